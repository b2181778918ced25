"""Admin request bodies (LiteLLM's field names), validated strictly: an unknown field, a
negative budget or a bad duration is a 400 that names the field."""
from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from ..durations import DurationError, parse_duration
from ..errors import GatewayError, bad_request


class _Limits(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    models: list[str] | UnsetType = UNSET
    max_budget: float | None | UnsetType = UNSET
    budget_duration: str | None | UnsetType = UNSET
    rpm_limit: int | None | UnsetType = UNSET
    tpm_limit: int | None | UnsetType = UNSET
    max_parallel_requests: int | None | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET
    blocked: bool | UnsetType = UNSET


class KeyGenerate(_Limits, kw_only=True, forbid_unknown_fields=True):
    key_alias: str | None | UnsetType = UNSET
    duration: str | None | UnsetType = UNSET
    team_id: str | None | UnsetType = UNSET
    user_id: str | None | UnsetType = UNSET
    key: str | UnsetType = UNSET  # a caller-chosen key value (LiteLLM allows it)


class KeyUpdate(KeyGenerate, kw_only=True, forbid_unknown_fields=True):
    pass


class KeyRef(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    key: str


class KeyDelete(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    keys: list[str] = msgspec.field(default_factory=list)
    key_aliases: list[str] = msgspec.field(default_factory=list)


class KeyRegenerate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    key: str | UnsetType = UNSET
    key_alias: str | None | UnsetType = UNSET
    duration: str | None | UnsetType = UNSET
    new_key: str | UnsetType = UNSET


class TeamNew(_Limits, kw_only=True, forbid_unknown_fields=True):
    team_id: str | UnsetType = UNSET
    team_alias: str | None | UnsetType = UNSET


class TeamUpdate(TeamNew, kw_only=True, forbid_unknown_fields=True):
    pass


class TeamDelete(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    team_ids: list[str]


class UserNew(_Limits, kw_only=True, forbid_unknown_fields=True):
    user_id: str | UnsetType = UNSET
    user_email: str | None | UnsetType = UNSET
    user_alias: str | None | UnsetType = UNSET
    user_role: str | None | UnsetType = UNSET
    auto_create_key: bool = True  # LiteLLM's /user/new also returns a key unless told not to
    key_alias: str | None | UnsetType = UNSET
    duration: str | None | UnsetType = UNSET
    team_id: str | None | UnsetType = UNSET


class UserUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    user_id: str
    user_email: str | None | UnsetType = UNSET
    user_alias: str | None | UnsetType = UNSET
    user_role: str | None | UnsetType = UNSET
    models: list[str] | UnsetType = UNSET
    max_budget: float | None | UnsetType = UNSET
    budget_duration: str | None | UnsetType = UNSET
    rpm_limit: int | None | UnsetType = UNSET
    tpm_limit: int | None | UnsetType = UNSET
    max_parallel_requests: int | None | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET
    blocked: bool | UnsetType = UNSET


class UserDelete(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    user_ids: list[str]


def decode(raw: Any, kind: type) -> Any:
    """A JSON body into ``kind``; any problem is a 400 naming the field."""
    if not isinstance(raw, dict):
        raise bad_request("request body must be a JSON object", None, "invalid_json")
    try:
        value = msgspec.convert(raw, kind, strict=True)
    except msgspec.ValidationError as exc:
        raise _validation_error(str(exc)) from None
    check(value)
    return value


def _validation_error(message: str) -> GatewayError:
    text, sep, where = message.rpartition(" - at `")
    path = where.rstrip("`").removeprefix("$").lstrip(".") if sep else None
    if "unknown field" in message.lower():
        field = message.split("`")[1] if "`" in message else None
        return bad_request(f"unknown field '{field}'", field, "unknown_field")
    param = path.split("[")[0].split(".")[0] if path else None
    return bad_request(f"{param}: {text[0].lower() + text[1:]}" if param else message, param, "invalid_value")


def check(value: Any) -> None:
    """Range and format rules msgspec's types cannot say."""
    budget = getattr(value, "max_budget", UNSET)
    if isinstance(budget, (int, float)) and budget < 0:
        raise bad_request("max_budget must not be negative", "max_budget")
    for field in ("rpm_limit", "tpm_limit", "max_parallel_requests"):
        number = getattr(value, field, UNSET)
        if isinstance(number, int) and number < 1:
            raise bad_request(f"{field} must be at least 1 (leave it out for no limit)", field)
    for field in ("duration", "budget_duration"):
        text = getattr(value, field, UNSET)
        if isinstance(text, str):
            try:
                parse_duration(text)
            except DurationError as exc:
                raise bad_request(f"{field}: {exc}", field) from None
    for field in ("key_alias", "team_id", "user_id", "team_alias"):
        text = getattr(value, field, UNSET)
        if isinstance(text, str) and (not text.strip() or len(text) > 256):
            raise bad_request(f"{field} must be a non-empty string of at most 256 characters", field)
    custom = getattr(value, "key", UNSET)
    if isinstance(custom, str) and type(value).__name__ == "KeyGenerate" and (
            not custom.startswith("sk-") or len(custom) < 20):
        raise bad_request("key must start with 'sk-' and be at least 20 characters long", "key")


def given(value: Any, *fields: str) -> dict[str, Any]:
    """The fields of ``value`` the caller actually sent."""
    return {f: getattr(value, f) for f in fields if getattr(value, f, UNSET) is not UNSET}


LIMIT_FIELDS = ("models", "max_budget", "budget_duration", "rpm_limit", "tpm_limit", "max_parallel_requests",
                "metadata", "blocked")
