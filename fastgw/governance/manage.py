"""Admin operations on keys, teams and users: validate, write SQLite, publish to all workers.

Order matters: the database write comes first, so a change every worker applies is one
that survives a restart; if the write fails, nothing changes anywhere and the caller gets
a 503 saying why.
"""
from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import msgspec
from msgspec import UNSET

from ..durations import add_duration, parse_duration, window_end
from ..errors import GatewayError, bad_request
from . import requests as rq
from .cache import scope_of
from .entities import Change, Entity, KeyEntry, Scoped, TeamEntry, UserEntry
from .keys import generate_key, hash_key, key_id, key_name
from .service import Governance
from .spend import totals

log = logging.getLogger("fastgw.governance")

MAX_ENTITY_BYTES = 256 * 1024  # every change crosses the workers' change feed (4 MiB ring)


def not_found(what: str, ident: str, param: str) -> GatewayError:
    return GatewayError(404, f"{what} {ident!r} not found", "invalid_request_error", param, "not_found")


def unavailable(exc: Exception) -> GatewayError:
    return GatewayError(503, f"the governance database is unavailable ({type(exc).__name__}: {exc}); nothing was "
                        "changed, retry later", "api_error", None, "database_unavailable")


def _iso(ts: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts is not None else None


class Manager:
    def __init__(self, gov: Governance) -> None:
        self.gov = gov

    # -- shared -------------------------------------------------------------------
    async def _save(self, changes: list[tuple[str, str, Entity | None]]) -> None:
        for kind, _, entity in changes:
            if entity is not None and len(msgspec.json.encode(entity)) > MAX_ENTITY_BYTES:
                raise bad_request(f"this {kind} is too large (metadata and models must fit in "
                                  f"{MAX_ENTITY_BYTES // 1024} KiB)", "metadata", "too_large")
        store = self.gov.store
        try:
            puts = [(kind, entity) for kind, _, entity in changes if entity is not None]
            if puts:
                await store.put_many(puts)
            for kind in ("key", "team", "user"):
                gone = [ident for k, ident, entity in changes if k == kind and entity is None]
                if gone:
                    await store.delete_many(kind, gone)
        except Exception as exc:
            log.error("governance: admin write failed: %s: %s", type(exc).__name__, exc)
            raise unavailable(exc) from None
        for kind, ident, entity in changes:
            self.gov.publish(Change.of(kind, ident, entity))

    async def _limits_changed(self, kind: str, ident: str, before: Scoped | None, after: Scoped) -> None:
        """A new budget or window: its spend so far comes from the database, not from zero."""
        if after.max_budget is None:
            return
        if before is not None and before.max_budget is not None and before.budget_duration == after.budget_duration:
            return
        try:
            await self.gov.refresh_spend(scope_of(kind, ident, after))
        except Exception as exc:
            log.error("governance: recounting spend of %s %s failed: %s", kind, ident, exc)

    def _apply_limits(self, entity: Scoped, body: Any, now: float) -> None:
        for name, value in rq.given(body, *rq.LIMIT_FIELDS).items():
            setattr(entity, name, value)
        entity.updated_at = now

    async def _budget_view(self, kind: str, ident: str, entity: Scoped) -> dict[str, Any]:
        scope = scope_of(kind, ident, entity)
        now = self.gov.clock()
        state = self.gov.counters.state(scope, now) if self.gov.counters is not None else None
        ends = window_end(scope.duration, now)
        return {"spend": state.spend if state else None, "reserved": state.reserved if state else None,
                "in_flight": state.in_flight if state else None, "budget_reset_at": _iso(ends)}

    async def _totals(self, kind: str, ids: list[str]) -> dict[str, Any]:
        try:
            return await totals(self.gov.store, kind, ids)
        except Exception as exc:
            return {"spend": None, "error": f"spend unavailable: {type(exc).__name__}: {exc}"}

    # -- keys ---------------------------------------------------------------------
    def key(self, value: str) -> KeyEntry:
        entry = self.gov.cache.keys.get(key_id(value))
        if entry is None:
            raise not_found("key", key_name(value) if value.startswith("sk-") else value, "key")
        return entry

    def _check_refs(self, team_id: str | None, user_id: str | None) -> None:
        if team_id is not None and team_id not in self.gov.cache.teams:
            raise bad_request(f"team_id {team_id!r} does not exist (create it with POST /team/new)", "team_id",
                              "not_found")

    async def generate_key(self, body: rq.KeyGenerate) -> dict[str, Any]:
        now = self.gov.clock()
        plain = body.key if body.key is not UNSET else generate_key()
        token = hash_key(plain)
        if token in self.gov.cache.keys:
            raise bad_request("a key with this value already exists", "key", "duplicate")
        team_id = body.team_id if body.team_id is not UNSET else None
        user_id = body.user_id if body.user_id is not UNSET else None
        self._check_refs(team_id, user_id)
        entry = KeyEntry(token=token, key_name=key_name(plain), created_at=now,
                         key_alias=body.key_alias if body.key_alias is not UNSET else None,
                         team_id=team_id, user_id=user_id, expires=_expiry(body.duration, now))
        self._apply_limits(entry, body, now)
        await self._save([("key", token, entry)])
        await self._limits_changed("key", token, None, entry)
        return {"key": plain, **self.key_public(entry)}

    def key_public(self, entry: KeyEntry) -> dict[str, Any]:
        data = msgspec.structs.asdict(entry)
        data.pop("previous_tokens", None)
        data["expires"] = _iso(entry.expires)
        data["created_at"] = _iso(entry.created_at)
        data["updated_at"] = _iso(entry.updated_at)
        return data

    async def key_info(self, entry: KeyEntry) -> dict[str, Any]:
        info = self.key_public(entry)
        info.update(await self._totals("key", entry.all_tokens))
        info["budget"] = await self._budget_view("key", entry.token, entry)
        return {"key": entry.token, "info": info}

    async def update_key(self, body: rq.KeyUpdate) -> dict[str, Any]:
        if body.key is UNSET:
            raise bad_request("key is required", "key", "missing_required_parameter")
        before = self.key(body.key)
        entry = msgspec.structs.replace(before)
        now = self.gov.clock()
        for name, value in rq.given(body, "key_alias", "team_id", "user_id").items():
            setattr(entry, name, value)
        if body.duration is not UNSET:
            entry.expires = _expiry(body.duration, now)
        self._check_refs(entry.team_id, entry.user_id)
        self._apply_limits(entry, body, now)
        await self._save([("key", entry.token, entry)])
        await self._limits_changed("key", entry.token, before, entry)
        return self.key_public(entry)

    async def set_blocked(self, value: str, blocked: bool) -> dict[str, Any]:
        entry = msgspec.structs.replace(self.key(value), blocked=blocked, updated_at=self.gov.clock())
        await self._save([("key", entry.token, entry)])
        return self.key_public(entry)

    async def delete_keys(self, body: rq.KeyDelete) -> dict[str, Any]:
        tokens = [self.key(k).token for k in body.keys]
        for alias in body.key_aliases:
            matches = [k.token for k in self.gov.cache.keys.values() if k.key_alias == alias]
            if not matches:
                raise not_found("key alias", alias, "key_aliases")
            tokens.extend(matches)
        if not tokens:
            raise bad_request("give the keys to delete in 'keys' (or 'key_aliases')", "keys",
                              "missing_required_parameter")
        await self._save([("key", t, None) for t in dict.fromkeys(tokens)])
        return {"deleted_keys": list(dict.fromkeys(tokens))}

    async def regenerate_key(self, value: str, body: rq.KeyRegenerate) -> dict[str, Any]:
        before = self.key(value)
        now = self.gov.clock()
        plain = body.new_key if body.new_key is not UNSET else generate_key()
        token = hash_key(plain)
        entry = msgspec.structs.replace(before, token=token, key_name=key_name(plain), updated_at=now,
                                        previous_tokens=[*before.all_tokens])
        if body.key_alias is not UNSET:
            entry.key_alias = body.key_alias
        if body.duration is not UNSET:
            entry.expires = _expiry(body.duration, now)
        old_spend = None
        if self.gov.counters is not None and before.max_budget is not None:
            old_spend = self.gov.counters.state(scope_of("key", before.token, before), now).spend
        await self._save([("key", token, entry), ("key", before.token, None)])
        if old_spend is not None and self.gov.counters is not None:
            self.gov.counters.set_spend(scope_of("key", token, entry), old_spend, now)
        return {"key": plain, **self.key_public(entry)}

    def list_keys(self, team_id: str | None, user_id: str | None, alias: str | None) -> list[KeyEntry]:
        out = []
        for entry in self.gov.cache.keys.values():
            if team_id is not None and entry.team_id != team_id:
                continue
            if user_id is not None and entry.user_id != user_id:
                continue
            if alias is not None and entry.key_alias != alias:
                continue
            out.append(entry)
        return sorted(out, key=lambda k: k.created_at)

    # -- teams --------------------------------------------------------------------
    def team(self, team_id: str) -> TeamEntry:
        entry = self.gov.cache.teams.get(team_id)
        if entry is None:
            raise not_found("team", team_id, "team_id")
        return entry

    async def new_team(self, body: rq.TeamNew) -> dict[str, Any]:
        now = self.gov.clock()
        team_id = body.team_id if body.team_id is not UNSET else str(uuid.uuid4())
        if team_id in self.gov.cache.teams:
            raise bad_request(f"team {team_id!r} already exists", "team_id", "duplicate")
        entry = TeamEntry(team_id=team_id, team_alias=body.team_alias if body.team_alias is not UNSET else None,
                          created_at=now)
        self._apply_limits(entry, body, now)
        await self._save([("team", team_id, entry)])
        await self._limits_changed("team", team_id, None, entry)
        return self.public(entry)

    async def update_team(self, body: rq.TeamUpdate) -> dict[str, Any]:
        if body.team_id is UNSET:
            raise bad_request("team_id is required", "team_id", "missing_required_parameter")
        before = self.team(body.team_id)
        entry = msgspec.structs.replace(before)
        if body.team_alias is not UNSET:
            entry.team_alias = body.team_alias
        self._apply_limits(entry, body, self.gov.clock())
        await self._save([("team", entry.team_id, entry)])
        await self._limits_changed("team", entry.team_id, before, entry)
        return self.public(entry)

    async def delete_teams(self, body: rq.TeamDelete) -> dict[str, Any]:
        for team_id in body.team_ids:
            self.team(team_id)
        keys = [k.token for k in self.gov.cache.keys.values() if k.team_id in body.team_ids]
        await self._save([("team", t, None) for t in body.team_ids] + [("key", k, None) for k in keys])
        return {"deleted_teams": body.team_ids, "deleted_keys": keys}

    async def team_info(self, team_id: str) -> dict[str, Any]:
        entry = self.team(team_id)
        info = self.public(entry)
        info.update(await self._totals("team", [team_id]))
        info["budget"] = await self._budget_view("team", team_id, entry)
        keys = [self.key_public(k) for k in self.list_keys(team_id, None, None)]
        return {"team_id": team_id, "team_info": info, "keys": keys}

    # -- users --------------------------------------------------------------------
    def user(self, user_id: str) -> UserEntry:
        entry = self.gov.cache.users.get(user_id)
        if entry is None:
            raise not_found("user", user_id, "user_id")
        return entry

    async def new_user(self, body: rq.UserNew) -> dict[str, Any]:
        now = self.gov.clock()
        user_id = body.user_id if body.user_id is not UNSET else str(uuid.uuid4())
        if user_id in self.gov.cache.users:
            raise bad_request(f"user {user_id!r} already exists", "user_id", "duplicate")
        entry = UserEntry(user_id=user_id, created_at=now, **rq.given(body, "user_email", "user_alias", "user_role"))
        self._apply_limits(entry, body, now)
        team_id = body.team_id if body.team_id is not UNSET else None
        self._check_refs(team_id, None)
        changes: list[tuple[str, str, Entity | None]] = [("user", user_id, entry)]
        plain = None
        if body.auto_create_key:
            plain = generate_key()
            key = KeyEntry(token=hash_key(plain), key_name=key_name(plain), user_id=user_id, team_id=team_id,
                           key_alias=body.key_alias if body.key_alias is not UNSET else None,
                           expires=_expiry(body.duration, now), created_at=now, updated_at=now)
            changes.append(("key", key.token, key))
        await self._save(changes)
        await self._limits_changed("user", user_id, None, entry)
        out = self.public(entry)
        if plain is not None:
            out["key"] = plain
        return out

    async def update_user(self, body: rq.UserUpdate) -> dict[str, Any]:
        before = self.user(body.user_id)
        entry = msgspec.structs.replace(before)
        for name, value in rq.given(body, "user_email", "user_alias", "user_role").items():
            setattr(entry, name, value)
        self._apply_limits(entry, body, self.gov.clock())
        await self._save([("user", entry.user_id, entry)])
        await self._limits_changed("user", entry.user_id, before, entry)
        return self.public(entry)

    async def delete_users(self, body: rq.UserDelete) -> dict[str, Any]:
        for user_id in body.user_ids:
            self.user(user_id)
        keys = [k.token for k in self.gov.cache.keys.values() if k.user_id in body.user_ids]
        await self._save([("user", u, None) for u in body.user_ids] + [("key", k, None) for k in keys])
        return {"deleted_users": body.user_ids, "deleted_keys": keys}

    async def user_info(self, user_id: str) -> dict[str, Any]:
        entry = self.user(user_id)
        info = self.public(entry)
        info.update(await self._totals("user", [user_id]))
        info["budget"] = await self._budget_view("user", user_id, entry)
        keys = [self.key_public(k) for k in self.list_keys(None, user_id, None)]
        return {"user_id": user_id, "user_info": info, "keys": keys}

    @staticmethod
    def public(entry: Scoped) -> dict[str, Any]:
        data = msgspec.structs.asdict(entry)
        data["created_at"] = _iso(entry.created_at)
        data["updated_at"] = _iso(entry.updated_at)
        return data


def _expiry(duration: Any, now: float) -> float | None:
    if duration is UNSET or duration is None:
        return None
    return add_duration(now, parse_duration(duration))
