"""What the gateway knows about keys, teams and users (cached in memory, stored as JSON rows)."""
from __future__ import annotations

from typing import Any

import msgspec

from ..durations import Duration, parse_duration

ENTITY_KINDS = ("key", "team", "user")


class Scoped(msgspec.Struct, kw_only=True):
    """Limits every level (key, team, user) can carry; None means no limit at that level."""

    models: list[str] = msgspec.field(default_factory=list)  # empty: every model
    max_budget: float | None = None
    budget_duration: str | None = None
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_parallel_requests: int | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    blocked: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def duration(self) -> Duration | None:
        return parse_duration(self.budget_duration) if self.budget_duration else None

    def allows_model(self, model: str) -> bool:
        return not self.models or model in self.models or "all-proxy-models" in self.models

    @property
    def limited(self) -> bool:
        return (self.max_budget is not None or self.rpm_limit is not None or self.tpm_limit is not None
                or self.max_parallel_requests is not None)


class KeyEntry(Scoped, kw_only=True):
    token: str  # sha256 hex of the key: its id
    key_name: str  # "sk-...abcd"
    key_alias: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    expires: float | None = None  # unix time; None: never
    previous_tokens: list[str] = msgspec.field(default_factory=list)  # hashes before /key/regenerate: same spend

    @property
    def all_tokens(self) -> list[str]:
        return [self.token, *self.previous_tokens]


class TeamEntry(Scoped, kw_only=True):
    team_id: str
    team_alias: str | None = None


class UserEntry(Scoped, kw_only=True):
    user_id: str
    user_email: str | None = None
    user_alias: str | None = None
    user_role: str | None = None


Entity = KeyEntry | TeamEntry | UserEntry
ENTITY_TYPES: dict[str, type] = {"key": KeyEntry, "team": TeamEntry, "user": UserEntry}


def entity_id(kind: str, entity: Entity) -> str:
    if kind == "key":
        return entity.token  # type: ignore[union-attr]
    if kind == "team":
        return entity.team_id  # type: ignore[union-attr]
    return entity.user_id  # type: ignore[union-attr]


class Change(msgspec.Struct, kw_only=True):
    """One entry of the cross-worker change feed: the entity's new state, or None if deleted."""

    kind: str
    id: str
    key: KeyEntry | None = None
    team: TeamEntry | None = None
    user: UserEntry | None = None

    @property
    def entity(self) -> Entity | None:
        return self.key or self.team or self.user

    @classmethod
    def of(cls, kind: str, ident: str, entity: Entity | None) -> "Change":
        return cls(kind=kind, id=ident, **({kind: entity} if entity is not None else {}))
