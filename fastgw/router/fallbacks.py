"""Which model groups to try after a group failed, as LiteLLM's config defines them.

Order of precedence for one request: the body's own ``fallbacks`` /
``context_window_fallbacks`` / ``content_policy_fallbacks`` (stripped before the body
goes upstream), then the config's. A context-window error uses
``context_window_fallbacks`` and a content-policy error ``content_policy_fallbacks``
when those are configured at all (else the generic list, as LiteLLM does); every other
deployment fault uses ``fallbacks`` for the group, else ``default_fallbacks``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Collection

from ..errors import GatewayError, bad_request
from .policy import CONTENT_POLICY, CONTEXT_WINDOW, allows_fallback
from .settings import RouterSettings

# Request-body fields that steer the router; never sent upstream.
ROUTER_BODY_FIELDS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks")


@dataclass(frozen=True, slots=True)
class FallbackPlan:
    generic: list[str]
    context_window: list[str] | None  # None: use ``generic``
    content_policy: list[str] | None

    def groups_for(self, err: GatewayError) -> list[str]:
        if err.code == CONTEXT_WINDOW:
            return self.generic if self.context_window is None else self.context_window
        if err.code == CONTENT_POLICY:
            return self.generic if self.content_policy is None else self.content_policy
        return self.generic if allows_fallback(err) else []


def take_request_fallbacks(body: dict, group: str, known: Collection[str]) -> dict[str, list[str]]:
    """Remove the router fields from ``body``; return them as group lists for ``group``.

    Accepts LiteLLM's forms: ``["gpt-4o-mini", ...]``, ``[{"model": "gpt-4o-mini"}, ...]``
    and ``[{"gpt-4o": ["gpt-4o-mini"]}]``.
    """
    out: dict[str, list[str]] = {}
    for name in ROUTER_BODY_FIELDS:
        if name in body:
            value = body.pop(name)
            if value is not None:
                out[name] = _request_groups(value, name, group, known)
    return out


def _request_groups(value: Any, param: str, group: str, known: Collection[str]) -> list[str]:
    if not isinstance(value, list):
        raise bad_request(f"{param} must be a list of model names", param, "invalid_type")
    groups: list[str] = []
    for item in value:
        if isinstance(item, str):
            groups.append(item)
        elif isinstance(item, dict) and isinstance(item.get("model"), str):
            groups.append(item["model"])
        elif isinstance(item, dict) and len(item) == 1:
            source, targets = next(iter(item.items()))
            if source == group and isinstance(targets, list) and all(isinstance(t, str) for t in targets):
                groups.extend(targets)
            elif not (isinstance(targets, list) and all(isinstance(t, str) for t in targets)):
                raise bad_request(f"{param}: each entry must map a model to a list of model names", param,
                                  "invalid_type")
        else:
            raise bad_request(f"{param}: each entry must be a model name", param, "invalid_type")
    for name in groups:
        if name not in known:
            raise bad_request(f"{param}: the model '{name}' does not exist", param, "model_not_found")
    return groups


def plan_for(settings: RouterSettings, group: str, overrides: dict[str, list[str]]) -> FallbackPlan:
    generic = overrides.get("fallbacks")
    if generic is None:
        generic = settings.fallbacks.get(group) or settings.fallbacks.get("*") or settings.default_fallbacks
    return FallbackPlan(
        generic=[g for g in generic if g != group],
        context_window=_specific(overrides.get("context_window_fallbacks"), settings.context_window_fallbacks, group),
        content_policy=_specific(overrides.get("content_policy_fallbacks"), settings.content_policy_fallbacks, group),
    )


def _specific(override: list[str] | None, configured: dict[str, list[str]] | None, group: str) -> list[str] | None:
    if override is not None:
        return [g for g in override if g != group]
    if configured is None:
        return None
    return [g for g in configured.get(group) or configured.get("*") or [] if g != group]
