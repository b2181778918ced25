"""The in-memory copy of every key, team and user: what the request path reads.

Loaded from SQLite at start-up and kept current by the change feed, so authenticating a
virtual key is a hash and a dict lookup, and a database outage leaves every known key
working. Lookups hand out immutable ``Identity`` snapshots: a request sees one
consistent set of limits even if an admin call changes them while it runs.
"""
from __future__ import annotations

from dataclasses import dataclass

from .counters import ScopeLimits
from .entities import Change, Entity, KeyEntry, Scoped, TeamEntry, UserEntry


@dataclass(frozen=True, slots=True)
class Identity:
    """A virtual key with the team and user it belongs to (those that exist)."""

    key: KeyEntry
    team: TeamEntry | None
    user: UserEntry | None
    scopes: tuple[ScopeLimits, ...]  # the levels that carry a limit, key first

    def levels(self) -> list[tuple[str, str, Scoped]]:
        out: list[tuple[str, str, Scoped]] = [("key", self.key.key_alias or self.key.key_name, self.key)]
        if self.team is not None:
            out.append(("team", self.team.team_id, self.team))
        if self.user is not None:
            out.append(("user", self.user.user_id, self.user))
        return out


def scope_of(kind: str, ident: str, entry: Scoped) -> ScopeLimits:
    return ScopeLimits(kind=kind, id=ident, max_budget=entry.max_budget, duration=entry.duration,
                       rpm=entry.rpm_limit, tpm=entry.tpm_limit, max_parallel=entry.max_parallel_requests)


class EntityCache:
    def __init__(self) -> None:
        self.keys: dict[str, KeyEntry] = {}
        self.teams: dict[str, TeamEntry] = {}
        self.users: dict[str, UserEntry] = {}
        self._identities: dict[str, Identity] = {}  # built on first use, dropped on any change
        self.loaded = False

    def replace_all(self, keys: list[KeyEntry], teams: list[TeamEntry], users: list[UserEntry]) -> None:
        self.keys = {k.token: k for k in keys}
        self.teams = {t.team_id: t for t in teams}
        self.users = {u.user_id: u for u in users}
        self._identities = {}
        self.loaded = True

    def apply(self, change: Change) -> None:
        table: dict = {"key": self.keys, "team": self.teams, "user": self.users}[change.kind]
        entity = change.entity
        if entity is None:
            table.pop(change.id, None)
        else:
            table[change.id] = entity
        self._identities = {}

    def entity(self, kind: str, ident: str) -> Entity | None:
        table: dict = {"key": self.keys, "team": self.teams, "user": self.users}[kind]
        return table.get(ident)

    def identity(self, token: str) -> Identity | None:
        found = self._identities.get(token)
        if found is not None:
            return found
        key = self.keys.get(token)
        if key is None:
            return None
        team = self.teams.get(key.team_id) if key.team_id else None
        user = self.users.get(key.user_id) if key.user_id else None
        scopes = [scope_of("key", key.token, key)] if key.limited else []
        if team is not None and team.limited:
            scopes.append(scope_of("team", team.team_id, team))
        if user is not None and user.limited:
            scopes.append(scope_of("user", user.user_id, user))
        found = Identity(key, team, user, tuple(scopes))
        self._identities[token] = found
        return found

    def scopes_for(self, kind: str, ident: str) -> ScopeLimits | None:
        entity = self.entity(kind, ident)
        return scope_of(kind, ident, entity) if entity is not None else None
