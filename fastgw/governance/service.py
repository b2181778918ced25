"""Governance for one worker: who may call, what it may spend, how fast, and what it cost.

Built once per worker by ``Gateway``. The request path (``resolve``, ``admit``,
``settle``, ``release``) touches only memory: the entity cache and the shared counter
store. SQLite is read at start-up and written by admin calls; a background task keeps
the cache current if a worker sits idle and heals the database if its file vanished.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from dataclasses import dataclass
from typing import Callable

import msgspec

from ..config import LoadedConfig
from ..durations import window_end, window_start
from ..errors import GatewayError
from ..tokens import preload_encodings
from ..usage import UsageRecord
from .budgets import PromptCount, budget_message, prompt_tokens, reservation
from .cache import EntityCache, Identity
from .counters import CounterStoreFull, Decision, Refusal, ScopeLimits, SharedMemoryCounterStore, Ticket
from .entities import Change
from .journal import JournalLost
from .pricing import Price, PriceTable, Usage, cost_of, deployment_price, format_cost
from .ratelimit import retry_after_header
from .spend import window_spend
from .store import GovernanceStore

log = logging.getLogger("fastgw.governance")

INSTANCE_ENV = "FASTGW_INSTANCE_ID"  # set by `fastgw serve` so all its workers share one counter file
WORKERS_ENV = "FASTGW_WORKERS"  # set by `fastgw serve`: "1" means no other process shares the counter file
SYNC_INTERVAL = 1.0
_UNKNOWN_GROUP: tuple[list[Price], bool] = ([], True)  # no deployment: nothing priced
_CHANGE = msgspec.json.Decoder(Change)


def instance_id() -> str:
    value = os.environ.get(INSTANCE_ENV)
    if not value:
        value = uuid.uuid4().hex
        os.environ[INSTANCE_ENV] = value  # workers started from here share it
    return value


def counter_path(database_path: str) -> str:
    return os.path.abspath(database_path) + ".governance"


@dataclass(slots=True)
class Admission:
    """What ``admit`` hands the call: the ticket to settle (None if no level has a limit)."""

    identity: Identity
    ticket: Ticket | None
    prompt: PromptCount


class Governance:
    def __init__(self, loaded: LoadedConfig, clock: Callable[[], float] = time.time) -> None:
        settings = loaded.config.general_settings
        self.enabled = bool(settings.master_key)  # virtual keys need a master key, as in LiteLLM
        self.clock = clock
        self.deny_unpriced = getattr(settings, "budget_unpriced_models", "deny") != "allow"
        self.table = PriceTable.load()
        self.prices: dict[str, Price | None] = {d.id: deployment_price(d, self.table) for d in loaded.deployments}
        self.group_prices: dict[str, list[Price | None]] = {}
        self.count_models: dict[str, str] = {}  # group -> an upstream model id, for its tokenizer
        for dep in loaded.deployments:
            self.group_prices.setdefault(dep.model_name, []).append(self.prices[dep.id])
            self.count_models.setdefault(dep.model_name, dep.model)
        # Per group, fixed with the config: the priced deployments (a reservation is their worst
        # case) and whether any is unpriced, so admission does not recompute them per request.
        self.group_pricing: dict[str, tuple[list[Price], bool]] = {
            group: ([p for p in prices if p is not None], any(p is None for p in prices))
            for group, prices in self.group_prices.items()}
        self.database_path = loaded.database_path
        self.store = GovernanceStore(loaded.database_path)
        self.cache = EntityCache()
        self.counter_slots = int(getattr(settings, "governance_counter_slots", 0) or 1 << 16)
        self.counters: SharedMemoryCounterStore | None = None
        self.cursor: tuple[int, int] = (0, 0)
        self.spend_rebuilt = False
        self.last_error: str | None = None
        self._task: asyncio.Task | None = None
        self._reload: asyncio.Task | None = None
        for dep in loaded.deployments:
            if self.prices[dep.id] is None:
                log.warning("deployment %s (%s/%s) has no price: its requests are logged as unpriced",
                            dep.id, dep.provider, dep.model)

    # -- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        self.counters = SharedMemoryCounterStore(counter_path(self.database_path), instance_id(), self.counter_slots,
                                                 exclusive=os.environ.get(WORKERS_ENV) == "1")
        with self.counters.locked() as view:
            fresh = self.counters.claim()
            self.cursor = self.counters.cursor_locked(view)
            if fresh:  # first worker of this instance: counters start from the usage database
                await self._load_entities()
                await self._rebuild_spend_locked(view)
        if not fresh:
            await self._load_entities()
            self.sync()
            self.spend_rebuilt = True
        if self.enabled:  # budgets and tpm limits count prompts: load the tokenizers before traffic
            await asyncio.to_thread(preload_encodings, set(self.count_models.values()))
        self._task = asyncio.create_task(self._maintain(), name="fastgw-governance")

    async def stop(self) -> None:
        for task in (self._task, self._reload):
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        await self.store.close()
        if self.counters is not None:
            self.counters.close()
            self.counters = None

    async def _load_entities(self) -> bool:
        try:
            keys, teams, users = await self.store.load_all()
        except Exception as exc:
            self._fail("loading keys, teams and users", exc)
            return False
        self.cache.replace_all(keys, teams, users)
        return True

    async def _rebuild_spend_locked(self, view: memoryview) -> None:
        assert self.counters is not None
        now = self.clock()
        try:
            for scope in self._budget_scopes():
                spend = await window_spend(self.store, scope.kind, self._ids(scope), window_start(scope.duration, now))
                self.counters.set_spend_locked(view, scope, spend, now)
        except Exception as exc:
            self._fail("rebuilding spend from the usage database", exc)
            return
        self.spend_rebuilt = True

    def _ids(self, scope: ScopeLimits) -> list[str]:
        """The ids a scope's spend is logged under (a regenerated key keeps its old hashes' spend)."""
        if scope.kind == "key":
            key = self.cache.keys.get(scope.id)
            if key is not None:
                return key.all_tokens
        return [scope.id]

    def _budget_scopes(self) -> list[ScopeLimits]:
        out = []
        for kind in ("key", "team", "user"):
            table: dict = {"key": self.cache.keys, "team": self.cache.teams, "user": self.cache.users}[kind]
            for ident in table:
                scope = self.cache.scopes_for(kind, ident)
                if scope is not None and scope.max_budget is not None:
                    out.append(scope)
        return out

    def earliest_budget_window(self, now: float) -> float | None:
        """Start of the earliest budget window open at ``now`` (None: no windowed budget).

        Usage retention keeps the spend minutes from there on: a restart rebuilds each window's
        spend from them."""
        starts = [window_start(scope.duration, now) for scope in self._budget_scopes() if scope.duration is not None]
        return min(starts) if starts else None

    async def refresh_spend(self, scope: ScopeLimits) -> None:
        """Recount a scope's window spend from the database (its budget or window changed)."""
        if self.counters is None:
            return
        now = self.clock()
        spend = await window_spend(self.store, scope.kind, self._ids(scope), window_start(scope.duration, now))
        self.counters.set_spend(scope, spend, now)

    def _fail(self, what: str, exc: Exception) -> None:
        self.last_error = f"{what}: {type(exc).__name__}: {exc}"
        log.error("governance: %s", self.last_error)

    async def _maintain(self) -> None:
        """Keep an idle worker's cache current; retry what failed at start-up; heal a lost file."""
        while True:
            await asyncio.sleep(SYNC_INTERVAL)
            try:
                self.sync()
                if not self.cache.loaded:
                    if await self._load_entities():
                        self.last_error = None
                        self.sync()
                if self.cache.loaded and not self.spend_rebuilt and self.counters is not None:
                    await self._rebuild_spend_max()
                if self.cache.loaded and self.store.file_replaced():
                    await self._heal()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._fail("background maintenance", exc)

    async def _rebuild_spend_max(self) -> None:
        assert self.counters is not None
        now = self.clock()
        try:
            for scope in self._budget_scopes():
                spend = await window_spend(self.store, scope.kind, self._ids(scope), window_start(scope.duration, now))
                if spend > self.counters.state(scope, now).spend:
                    self.counters.set_spend(scope, spend, now)
        except Exception as exc:
            self._fail("rebuilding spend from the usage database", exc)
            return
        self.spend_rebuilt = True
        self.last_error = None

    async def _heal(self) -> None:
        """The database file was deleted: write every known key, team and user back into the new one."""
        items = [("key", k) for k in self.cache.keys.values()] + [("team", t) for t in self.cache.teams.values()] + \
            [("user", u) for u in self.cache.users.values()]
        try:
            await self.store.put_many(items)
        except Exception as exc:
            self._fail("re-creating keys in a replaced database", exc)
            return
        self.store.recreated += 1
        log.error("governance: the database file was replaced or deleted; %d keys, teams and users were written "
                  "back from memory", len(items))
        self.last_error = None

    def healthy(self) -> bool:
        return self.last_error is None and (self.cache.loaded or not self.enabled)

    def status(self) -> dict:
        """For /health/readiness: is the key cache loaded, did spend rebuild, what failed last."""
        return {"healthy": self.healthy(), "keys": len(self.cache.keys), "teams": len(self.cache.teams),
                "users": len(self.cache.users), "spend_rebuilt": self.spend_rebuilt,
                "database_recreated": self.store.recreated, "error": self.last_error}

    # -- change feed ----------------------------------------------------------------
    def publish(self, change: Change) -> None:
        """After an admin write is committed: tell every worker (this one included)."""
        if self.counters is None:
            self.cache.apply(change)
            return
        self.counters.publish(msgspec.json.encode(change))
        self.sync()

    def sync(self) -> None:
        """Apply changes published by any worker since this one last looked (a memory read if none)."""
        counters = self.counters
        if counters is None or counters.head_generation() == self.cursor[0]:
            return
        try:
            payloads, self.cursor = counters.changes_since(self.cursor)
        except JournalLost:
            self.cursor = counters.cursor()
            if self._reload is None or self._reload.done():
                self._reload = asyncio.ensure_future(self._load_entities())
            return
        for payload in payloads:
            self.cache.apply(_CHANGE.decode(payload))

    # -- request path ---------------------------------------------------------------
    def resolve(self, token: str) -> Identity | None:
        """The identity of a virtual key (by its hash), or None if unknown; refusals raise 401."""
        self.sync()
        identity = self.cache.identity(token)
        if identity is None:
            return None
        key = identity.key
        if key.blocked:
            raise _auth_error("This key is blocked. Ask an admin to unblock it (POST /key/unblock).", "key_blocked")
        if key.expires is not None and self.clock() >= key.expires:
            raise _auth_error(f"This key expired at {_iso(key.expires)}.", "key_expired")
        if identity.team is not None and identity.team.blocked:
            raise _auth_error(f"Team {identity.team.team_id} is blocked.", "team_blocked")
        if identity.user is not None and identity.user.blocked:
            raise _auth_error(f"User {identity.user.user_id} is blocked.", "user_blocked")
        return identity

    def admit(self, call) -> None:  # noqa: ANN001 - pipeline.Call (imported lazily to avoid a cycle)
        """Check model access, reserve budget and take rate-limit capacity, or raise."""
        identity: Identity | None = call.principal.identity
        if identity is None:
            return
        record = call.record
        record.key_alias = identity.key.key_alias
        record.team_id = identity.key.team_id
        record.user_id = identity.key.user_id
        model = call.model_group
        for level, name, entry in identity.levels():
            if not entry.allows_model(model):
                raise GatewayError(403, f"{level} {name} is not allowed to call model '{model}'. Allowed models: "
                                   f"{', '.join(entry.models)}", "invalid_request_error", "model", "model_not_allowed")
        scopes = identity.scopes
        if not scopes:
            return
        priced, unpriced = self.group_pricing.get(model, _UNKNOWN_GROUP)
        budgeted = counted = False
        for scope in scopes:  # a plain loop: cheaper than two any() generators per request
            if scope.max_budget is not None:
                budgeted = True
            if scope.tpm:
                counted = True
        if budgeted and self.deny_unpriced and unpriced:
            raise GatewayError(400, f"model '{model}' has no price, so a budget cannot be enforced for it; set "
                               "input_cost_per_token and output_cost_per_token in its model_info (or "
                               "general_settings.budget_unpriced_models: allow)", "invalid_request_error", "model",
                               "model_unpriced")
        needs_count = budgeted or counted
        body, endpoint = call.body, call.endpoint
        if endpoint == "messages" and getattr(call, "openai_body", None) is not None:
            body, endpoint = call.openai_body, "chat.completions"  # translated for a non-Anthropic upstream
        prompt = prompt_tokens(endpoint, self.count_models.get(model, model), body, call.request_info) \
            if needs_count else PromptCount(0, True)
        reserve = reservation(priced, endpoint, body, prompt) if budgeted else 0.0
        assert self.counters is not None
        now = self.clock()
        try:
            decision = self.counters.admit(scopes, reserve, prompt.tokens, now)
        except CounterStoreFull as exc:
            log.error("governance: %s", exc)
            raise GatewayError(503, "the gateway's counter store is full; raise general_settings."
                               "governance_counter_slots", "api_error", None, "counter_store_full") from None
        if decision.refusal is not None:
            raise self._refusal_error(decision, reserve, now)
        call.admission = Admission(identity, decision.ticket, prompt)
        _rate_headers(call.response_headers, decision)

    def _refusal_error(self, decision: Decision, reserve: float, now: float) -> GatewayError:
        refusal = decision.refusal
        assert refusal is not None and self.counters is not None
        scope = refusal.scope
        if refusal.reason == "budget":
            ends = window_end(scope.duration, now)
            message = budget_message(scope.kind, _scope_name(self.cache, scope), refusal.spend, refusal.reserved,
                                     reserve, refusal.limit, _iso(ends) if ends else None)
            return GatewayError(400, message, "budget_exceeded", None, "budget_exceeded")
        remaining_requests, remaining_tokens = self.counters.remaining(scope, now)
        headers = {"retry-after": retry_after_header(refusal.retry_after)}
        if scope.rpm:
            headers["x-ratelimit-limit-requests"] = str(scope.rpm)
            headers["x-ratelimit-remaining-requests"] = str(0 if refusal.reason == "rpm" else remaining_requests)
        if scope.tpm:
            headers["x-ratelimit-limit-tokens"] = str(scope.tpm)
            headers["x-ratelimit-remaining-tokens"] = str(remaining_tokens)
        name = f"{scope.kind} {_scope_name(self.cache, scope)}"
        if refusal.reason == "parallel":
            message = f"{name} already has {refusal.limit:g} requests in flight (max_parallel_requests)."
        elif refusal.reason == "rpm":
            message = f"{name} reached its rpm_limit of {refusal.limit:g} requests per minute."
        elif refusal.impossible:
            message = f"this request alone needs more tokens than the tpm_limit of {refusal.limit:g} of {name}."
        else:
            message = f"{name} reached its tpm_limit of {refusal.limit:g} tokens per minute."
        if not refusal.impossible:
            message += f" Retry after {headers['retry-after']}s."
        return GatewayError(429, message, "rate_limit_error", None, "rate_limit_exceeded", headers=headers,
                            retry_after=refusal.retry_after)

    def price_record(self, record: UsageRecord) -> None:
        """Fill in a usage row's cost and its parts (or mark it unpriced); idempotent."""
        if record.cost is not None or record.unpriced or record.deployment_id is None:
            return
        price = self.prices.get(record.deployment_id)
        if price is None:
            record.unpriced = True
            return
        cost = cost_of(price, Usage(record.prompt_tokens, record.completion_tokens, record.cached_tokens,
                                    record.cache_creation_tokens, record.reasoning_tokens))
        record.cost = cost.total
        record.input_cost = cost.input_cost
        record.output_cost = cost.output_cost
        record.cache_read_cost = cost.cache_read_cost
        record.cache_creation_cost = cost.cache_creation_cost

    def price(self, call) -> None:  # noqa: ANN001 - pipeline.Call
        """Price the call and say so in its response headers; idempotent."""
        record = call.record
        self.price_record(record)
        if record.cost is not None:
            call.response_headers["x-fastgw-cost"] = format_cost(record.cost)
        elif record.unpriced:
            call.response_headers["x-fastgw-unpriced"] = "1"

    def settle(self, call) -> None:  # noqa: ANN001 - pipeline.Call
        """The call is over: price it (if not yet), replace its reservation by its cost, free its slot."""
        record = call.record
        if record.cost is None and not record.unpriced:
            self.price(call)
        admission: Admission | None = getattr(call, "admission", None)
        if admission is not None and admission.ticket is not None and not admission.ticket.settled \
                and self.counters is not None:
            self.counters.settle(admission.ticket, record.cost or 0.0,
                                 record.prompt_tokens + record.completion_tokens, self.clock())

    def release(self, call) -> None:  # noqa: ANN001 - pipeline.Call or None
        """Free a reservation that was never settled (the call failed before reaching a provider)."""
        admission: Admission | None = getattr(call, "admission", None) if call is not None else None
        if admission is not None and admission.ticket is not None and not admission.ticket.settled \
                and self.counters is not None:
            self.counters.settle(admission.ticket, 0.0, 0, self.clock())

    def for_stream(self, call) -> Callable[[dict], dict]:  # noqa: ANN001 - pipeline.Call
        """Before a stream's headers go out: flag an unpriced deployment; the returned hook adds
        ``cost`` to the usage chunk the client asked for."""
        price = self.prices.get(call.record.deployment_id or "")
        if price is None:
            call.response_headers["x-fastgw-unpriced"] = "1"

        def annotate(usage: dict) -> dict:
            current = self.prices.get(call.record.deployment_id or "")
            if current is None:
                return usage
            row = UsageRecord(ts=0.0, request_id="", endpoint="")
            row.set_usage(usage)
            cost = cost_of(current, Usage(row.prompt_tokens, row.completion_tokens, row.cached_tokens,
                                          row.cache_creation_tokens, row.reasoning_tokens)).total
            return {**usage, "cost": cost}

        return annotate


def _scope_name(cache: EntityCache, scope: ScopeLimits) -> str:
    if scope.kind == "key":
        key = cache.keys.get(scope.id)
        if key is not None:
            return key.key_alias or key.key_name
    return scope.id


def _rate_headers(headers: dict[str, str], decision: Decision) -> None:
    rate = decision.rate
    if rate.limit_requests is not None:
        headers["x-ratelimit-limit-requests"] = str(rate.limit_requests)
        headers["x-ratelimit-remaining-requests"] = str(rate.remaining_requests)
    if rate.limit_tokens is not None:
        headers["x-ratelimit-limit-tokens"] = str(rate.limit_tokens)
        headers["x-ratelimit-remaining-tokens"] = str(rate.remaining_tokens)


def _auth_error(message: str, code: str) -> GatewayError:
    return GatewayError(401, message, "invalid_request_error", None, code)


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


__all__ = ["Admission", "Governance", "Refusal", "instance_id"]
