"""Where a Bedrock request goes and how it is authenticated.

Credentials come from the deployment first, then from the standard AWS environment variables,
so a config that works with LiteLLM (which also falls back to the environment) works here.
Order: config AWS keys -> config ``api_key`` (Bedrock API key, bearer) ->
``AWS_BEARER_TOKEN_BEDROCK`` -> ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping
from urllib.parse import quote, urlsplit

from ...errors import GatewayError
from .sigv4 import AwsCredentials

if TYPE_CHECKING:
    from ...config.schema import Deployment

_HOST_REGION = re.compile(r"bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com")
# LiteLLM route prefixes in ``bedrock/converse/<id>``; this provider always speaks Converse.
_ROUTE_PREFIXES = ("converse/", "invoke/")
# LiteLLM credential sources that need network or file I/O (STS, SSO, profiles).
_UNSUPPORTED_AUTH = ("aws_role_name", "aws_profile_name", "aws_web_identity_token", "aws_session_name",
                     "aws_sts_endpoint")


def config_error(dep: "Deployment", message: str) -> GatewayError:
    return GatewayError(500, f"deployment {dep.id}: {message}", "api_error", None, "config_error")


@dataclass(frozen=True, slots=True)
class BedrockAuth:
    """Exactly one of ``credentials`` (SigV4) or ``bearer_token`` (Bedrock API key) is set."""

    credentials: AwsCredentials | None = None
    bearer_token: str | None = None


def model_id(dep: "Deployment") -> str:
    model = dep.model
    for prefix in _ROUTE_PREFIXES:
        if model.startswith(prefix):
            return model[len(prefix):]
    return model


def model_path(dep: "Deployment", operation: str) -> str:
    """``/model/{modelId}/{operation}``: the id is ONE path segment, so ':' and '/' are encoded."""
    return f"/model/{quote(model_id(dep), safe='')}/{operation}"


def endpoint_override(dep: "Deployment") -> str | None:
    return dep.params.aws_bedrock_runtime_endpoint or dep.params.api_base


def region(dep: "Deployment", environ: Mapping[str, str]) -> str | None:
    found = dep.params.aws_region_name or environ.get("AWS_REGION_NAME") or environ.get("AWS_REGION") \
        or environ.get("AWS_DEFAULT_REGION")
    if found:
        return found
    override = endpoint_override(dep)
    match = _HOST_REGION.search(urlsplit(override).hostname or "") if override else None
    return match.group(1) if match else None


def url(dep: "Deployment", operation: str, environ: Mapping[str, str]) -> str:
    base = endpoint_override(dep)
    if base is None:
        where = region(dep, environ)
        if where is None:
            raise config_error(dep, "aws_region_name is required for bedrock (or set AWS_REGION)")
        base = f"https://bedrock-runtime.{where}.amazonaws.com"
    return base.rstrip("/") + model_path(dep, operation)


def auth(dep: "Deployment", environ: Mapping[str, str]) -> BedrockAuth:
    params = dep.params
    if params.aws_access_key_id and params.aws_secret_access_key:
        return BedrockAuth(AwsCredentials(params.aws_access_key_id, params.aws_secret_access_key,
                                          params.aws_session_token or None))
    if params.api_key:
        return BedrockAuth(bearer_token=params.api_key)
    if environ.get("AWS_BEARER_TOKEN_BEDROCK"):
        return BedrockAuth(bearer_token=environ["AWS_BEARER_TOKEN_BEDROCK"])
    if environ.get("AWS_ACCESS_KEY_ID") and environ.get("AWS_SECRET_ACCESS_KEY"):
        return BedrockAuth(AwsCredentials(environ["AWS_ACCESS_KEY_ID"], environ["AWS_SECRET_ACCESS_KEY"],
                                          environ.get("AWS_SESSION_TOKEN") or None))
    other = sorted(key for key in _UNSUPPORTED_AUTH if (dep.extra or {}).get(key))
    if other:
        raise config_error(dep, f"{', '.join(other)} is not supported by fastgw's bedrock provider (it would need "
                                "STS or profile lookups); use aws_access_key_id/aws_secret_access_key "
                                "(+ aws_session_token) or a Bedrock api_key")
    raise config_error(dep, "bedrock needs aws_access_key_id + aws_secret_access_key or api_key")
