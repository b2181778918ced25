"""Governance end to end: the openai SDK (and httpx for the admin API) -> `fastgw serve` (mock provider).

Prices come from model_info so every figure below is hand-computable: 1e-6 $ per prompt
token, 2e-6 $ per completion token.
"""
from __future__ import annotations

import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from fastgw.durations import parse_duration, window_start

MASTER = "sk-fastgw-master-governance"
PRICE_IN, PRICE_OUT = 1e-6, 2e-6


def config(**general) -> dict:
    priced = {"input_cost_per_token": PRICE_IN, "output_cost_per_token": PRICE_OUT}
    return {
        "model_list": [
            {"model_name": "priced", "litellm_params": {"model": "mock/priced"}, "model_info": priced},
            {"model_name": "slow", "litellm_params": {"model": "mock/slow", "mock_chunk_delay_ms": 15},
             "model_info": priced},
            {"model_name": "other", "litellm_params": {"model": "mock/other"}, "model_info": priced},
            {"model_name": "unpriced", "litellm_params": {"model": "mock/unpriced"}},
        ],
        "general_settings": general,
    }


class Admin:
    def __init__(self, gw, key: str = MASTER) -> None:
        self.url = gw.url
        self.headers = {"authorization": f"Bearer {key}"}

    def post(self, path: str, body: dict, status: int = 200) -> dict:
        r = httpx.post(self.url + path, json=body, headers=self.headers, timeout=20)
        assert r.status_code == status, r.text
        return r.json()

    def get(self, path: str, status: int = 200, **params) -> dict:
        r = httpx.get(self.url + path, params=params, headers=self.headers, timeout=20)
        assert r.status_code == status, r.text
        return r.json()

    def key(self, **fields) -> str:
        return self.post("/key/generate", fields)["key"]


def client(gw, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30)


def chat(gw, key: str, model: str = "priced", **kw):
    return client(gw, key).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=20, **kw)


def outcome(fn) -> str:
    try:
        fn()
        return "ok"
    except openai.APIStatusError as exc:
        return f"{exc.status_code}:{(exc.body or {}).get('code') if isinstance(exc.body, dict) else exc.body}"


@pytest.fixture
def gw(start_gateway):
    return start_gateway(config(), key=MASTER)


@pytest.fixture
def gw2(start_gateway):
    return start_gateway(config(), key=MASTER, workers=2)


def usage_written(gw, timeout: float = 15.0) -> None:
    """Wait until the usage writer has committed every row recorded so far (spend reads
    the rows and rollups; a fixed sleep failed when the test machine was busy)."""
    deadline = time.monotonic() + timeout
    while True:
        depth = httpx.get(gw.url + "/health/readiness", timeout=10).json()["usage_log"]["queue_depth"]
        if depth == 0:
            return
        assert time.monotonic() < deadline, f"{depth} usage rows still unwritten after {timeout} s"
        time.sleep(0.05)


def one_request_cost(gw) -> float:
    raw = chat(gw, MASTER)
    return float(raw.headers["x-fastgw-cost"])


# -- costs --------------------------------------------------------------------------
def test_cost_headers_and_log(gw):
    raw = chat(gw, MASTER)
    usage = raw.parse().usage
    expected = usage.prompt_tokens * PRICE_IN + usage.completion_tokens * PRICE_OUT
    assert float(raw.headers["x-fastgw-cost"]) == pytest.approx(expected)
    assert "x-fastgw-unpriced" not in raw.headers
    stream = client(gw, MASTER).chat.completions.create(model="priced", messages=[{"role": "user", "content": "hi"}],
                                                       stream=True, stream_options={"include_usage": True})
    last = list(stream)[-1]
    assert last.usage.model_extra["cost"] == pytest.approx(
        last.usage.prompt_tokens * PRICE_IN + last.usage.completion_tokens * PRICE_OUT)
    plain = list(client(gw, MASTER).chat.completions.create(model="priced", stream=True,
                                                            messages=[{"role": "user", "content": "hi"}]))
    assert all(c.usage is None for c in plain), "no usage chunk (and no cost) when the client did not ask"
    raw = chat(gw, MASTER, model="unpriced")
    assert raw.headers["x-fastgw-unpriced"] == "1" and "x-fastgw-cost" not in raw.headers
    gw.stop()
    rows = gw.usage_rows()
    priced = rows[0]
    assert priced["cost"] == pytest.approx(expected)
    assert priced["input_cost"] == pytest.approx(priced["prompt_tokens"] * PRICE_IN)
    assert priced["output_cost"] == pytest.approx(priced["completion_tokens"] * PRICE_OUT)
    unpriced = rows[-1]
    assert unpriced["unpriced"] == 1 and unpriced["cost"] is None, "unpriced is never logged as $0"


# -- budgets under concurrency ------------------------------------------------------
@pytest.mark.parametrize("workers", [1, 2])
def test_parallel_requests_never_overshoot_the_budget(start_gateway, workers):
    gw = start_gateway(config(), key=MASTER, workers=workers)
    cost = one_request_cost(gw)
    admin = Admin(gw)
    budget = cost * 10
    key = admin.key(max_budget=budget)

    def call(_: int) -> str:
        return outcome(lambda: list(client(gw, key).chat.completions.create(
            model="slow", messages=[{"role": "user", "content": "hi"}], max_tokens=20, stream=True,
            stream_options={"include_usage": True})))

    with ThreadPoolExecutor(100) as pool:
        results = list(pool.map(call, range(100)))
    ok = results.count("ok")
    assert set(results) <= {"ok", "400:budget_exceeded"}, results
    assert 1 <= ok <= 11, f"{ok} requests passed a budget that covers 10: {results}"
    # A stream is settled just after its last byte is sent: wait for the last settlements.
    deadline = time.monotonic() + 10
    while True:
        info = admin.get("/key/info", key=key)["info"]
        if info["budget"]["in_flight"] == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    reservation = 20 * PRICE_OUT + 20 * PRICE_IN  # bounds one reservation's worth for this prompt
    counted = info["budget"]["spend"]  # the admission counters every worker shares
    assert counted <= budget + reservation
    assert info["budget"]["reserved"] == pytest.approx(0.0, abs=1e-12) and info["budget"]["in_flight"] == 0
    r = httpx.post(gw.base_url + "/chat/completions", headers={"authorization": f"Bearer {key}"},
                   json={"model": "priced", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20})
    assert r.status_code == 400 and r.json()["error"]["code"] == "budget_exceeded"
    message = r.json()["error"]["message"]
    assert "spend $" in message and f"max_budget ${budget:.6f}" in message
    # Audit: the counters, the usage rows and the spend rollup (every worker's writer) agree.
    token = admin.get("/key/info", key=key)["key"]
    gw.stop()
    charged = [row["cost"] for row in gw.usage_rows() if row["key_hash"] == token and row["cost"]]
    assert len(charged) == ok
    assert sum(charged) == pytest.approx(counted)
    con = sqlite3.connect(gw.db_path)
    try:
        (rolled,) = con.execute("SELECT spend FROM spend_totals WHERE kind = 'key' AND id = ?", (token,)).fetchone()
    finally:
        con.close()
    assert rolled == pytest.approx(counted)


@pytest.mark.parametrize("workers", [1, 2])
def test_rpm_limit_under_a_burst(start_gateway, workers):
    """GCRA: 20 per minute admits a burst of 20, then one every 3 s; a burst that takes under
    3 s gets exactly 20 through (a slower one also gets the refills it lived to see)."""
    gw = start_gateway(config(), key=MASTER, workers=workers)
    key = Admin(gw).key(rpm_limit=20)
    shared = client(gw, key)
    send = lambda _: outcome(lambda: shared.chat.completions.create(  # noqa: E731
        model="priced", messages=[{"role": "user", "content": "hi"}], max_tokens=5))
    started = time.monotonic()  # GCRA's clock starts with the first admitted request
    send(0)  # warm the connection pool; this one counts against the limit too
    with ThreadPoolExecutor(100) as pool:
        results = list(pool.map(send, range(99)))
    refills = int((time.monotonic() - started) // 3)
    ok = results.count("ok") + 1
    assert 20 <= ok <= 20 + refills, (ok, refills)
    assert results.count("429:rate_limit_exceeded") == 100 - ok
    r = httpx.post(gw.base_url + "/chat/completions", headers={"authorization": f"Bearer {key}"},
                   json={"model": "priced", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["x-ratelimit-limit-requests"] == "20" and r.headers["x-ratelimit-remaining-requests"] == "0"


def test_tpm_and_parallel_limits(gw):
    admin = Admin(gw)
    key = admin.key(tpm_limit=1000)
    raw = chat(gw, key)
    assert raw.headers["x-ratelimit-limit-tokens"] == "1000"
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) < 1000
    big = "word " * 2000
    with pytest.raises(openai.RateLimitError) as info:
        client(gw, key).chat.completions.create(model="priced", messages=[{"role": "user", "content": big}])
    assert "tpm_limit" in info.value.message
    assert info.value.response.headers["x-ratelimit-limit-tokens"] == "1000"
    single = admin.key(max_parallel_requests=1)

    def slow(_: int) -> str:
        return outcome(lambda: list(client(gw, single).chat.completions.create(
            model="slow", messages=[{"role": "user", "content": "hi"}], stream=True)))

    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(slow, range(5)))
    assert results.count("ok") >= 1 and "429:rate_limit_exceeded" in results


def test_budget_resets_after_its_window(gw):
    cost = one_request_cost(gw)
    admin = Admin(gw)
    key = admin.key(max_budget=cost * 1.5, budget_duration="2s")
    time.sleep(2.05 - time.time() % 2)  # start right after a window boundary
    assert outcome(lambda: chat(gw, key)) == "ok"
    assert outcome(lambda: chat(gw, key)) == "400:budget_exceeded"
    info = admin.get("/key/info", key=key)["info"]
    assert info["budget"]["budget_reset_at"]
    time.sleep(2.05 - time.time() % 2)
    assert outcome(lambda: chat(gw, key)) == "ok", "a new window, a new budget"


def test_team_and_user_budgets_apply_to_all_their_keys(gw):
    cost = one_request_cost(gw)
    admin = Admin(gw)
    admin.post("/team/new", {"team_id": "t1", "max_budget": cost * 2.5, "models": ["priced", "slow"]})
    a, b = admin.key(team_id="t1"), admin.key(team_id="t1")
    assert [outcome(lambda k=k: chat(gw, k)) for k in (a, b, a)] == ["ok", "ok", "400:budget_exceeded"]
    assert outcome(lambda: chat(gw, b, model="other")) == "403:model_not_allowed", "the team's model list"
    user = admin.post("/user/new", {"user_id": "u1", "rpm_limit": 2})
    assert user["key"].startswith("sk-")
    k2 = admin.key(user_id="u1")
    assert [outcome(lambda k=k: chat(gw, k)) for k in (user["key"], k2, k2)] == ["ok", "ok",
                                                                               "429:rate_limit_exceeded"]
    usage_written(gw)
    assert admin.get("/team/info", team_id="t1")["team_info"]["spend"] == pytest.approx(cost * 2)
    assert admin.get("/user/info", user_id="u1")["user_info"]["requests"] == 2


# -- keys ---------------------------------------------------------------------------
def test_models_blocked_expired(gw):
    admin = Admin(gw)
    key = admin.key(models=["priced"])
    assert outcome(lambda: chat(gw, key)) == "ok"
    with pytest.raises(openai.PermissionDeniedError) as info:
        chat(gw, key, model="other")
    assert "not allowed to call model 'other'" in info.value.message
    assert [m.id for m in client(gw, key).models.list()] == ["priced"], "a key lists only its models"
    with pytest.raises(openai.NotFoundError):
        client(gw, key).models.retrieve("other")
    assert {m.id for m in client(gw, MASTER).models.list()} >= {"priced", "other"}
    admin.post("/key/block", {"key": key})
    with pytest.raises(openai.AuthenticationError) as info:
        chat(gw, key)
    assert info.value.code == "key_blocked"
    admin.post("/key/unblock", {"key": key})
    assert outcome(lambda: chat(gw, key)) == "ok"
    short = admin.key(duration="2s")
    assert outcome(lambda: chat(gw, short)) == "ok"
    time.sleep(2.1)
    with pytest.raises(openai.AuthenticationError) as info:
        chat(gw, short)
    assert info.value.code == "key_expired"
    admin.post("/key/delete", {"keys": [key]})
    assert outcome(lambda: chat(gw, key)) == "401:invalid_api_key"


def test_anthropic_messages_endpoint_is_governed(gw):
    import anthropic

    admin = Admin(gw)
    key = admin.key(models=["priced"], max_budget=1.0)
    claude = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0)
    reply = claude.messages.with_raw_response.create(model="priced", max_tokens=20,
                                                     messages=[{"role": "user", "content": "hi"}])
    assert float(reply.headers["x-fastgw-cost"]) > 0
    with pytest.raises(anthropic.PermissionDeniedError):
        claude.messages.create(model="other", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    admin.post("/key/update", {"key": key, "max_budget": 0.0})
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.create(model="priced", max_tokens=20, messages=[{"role": "user", "content": "hi"}])


def test_changes_reach_every_worker_at_once(gw2):
    admin = Admin(gw2)
    for _ in range(3):
        key = admin.key()
        results = [outcome(lambda: chat(gw2, key)) for _ in range(8)]
        assert results == ["ok"] * 8, f"a new key works on every worker: {results}"
        admin.post("/key/block", {"key": key})
        results = [outcome(lambda: chat(gw2, key)) for _ in range(8)]
        assert results == ["401:key_blocked"] * 8, results


def test_regenerate_keeps_settings_and_spend(gw):
    admin = Admin(gw)
    old = admin.key(key_alias="rotate-me", max_budget=1.0)
    chat(gw, old)
    usage_written(gw)
    spent = admin.get("/key/info", key=old)["info"]["spend"]
    new = admin.post("/key/regenerate", {"key": old})["key"]
    assert new != old and outcome(lambda: chat(gw, old)) == "401:invalid_api_key"
    assert outcome(lambda: chat(gw, new)) == "ok"
    usage_written(gw)
    info = admin.get("/key/info", key=new)["info"]
    assert info["key_alias"] == "rotate-me" and info["max_budget"] == 1.0
    assert info["spend"] == pytest.approx(spent * 2)


def test_admin_api_is_master_only_and_validated(gw):
    admin = Admin(gw)
    key = admin.key(key_alias="mine")
    other = admin.key(key_alias="theirs")
    virtual = Admin(gw, key)
    for path in ("/key/generate", "/key/update", "/key/delete", "/key/block", "/team/new", "/user/new"):
        assert virtual.post(path, {}, 403)["error"]["code"] == "admin_only"
    for path in ("/key/list", "/team/list", "/user/list", "/spend/logs", "/global/spend/report"):
        virtual.get(path, 403)
    assert virtual.get("/key/info")["info"]["key_alias"] == "mine", "a key may look itself up"
    assert virtual.get("/key/info", key=key)["info"]["key_alias"] == "mine"
    virtual.get("/key/info", 403, key=other)
    r = httpx.post(gw.url + "/key/generate", json={})
    assert r.status_code == 401
    for body, param in (({"max_budget": -1}, "max_budget"), ({"budget_duration": "1 month"}, "budget_duration"),
                        ({"duration": "soon"}, "duration"), ({"rpm_limit": 0}, "rpm_limit"),
                        ({"bogus": 1}, "bogus"), ({"models": "priced"}, "models"), ({"team_id": "nope"}, "team_id")):
        error = admin.post("/key/generate", body, 400)["error"]
        assert error["param"] == param, (body, error)
        assert set(error) == {"message", "type", "param", "code"}
    assert admin.post("/team/new", {"team_id": "t", "max_budget": -5}, 400)["error"]["param"] == "max_budget"
    assert admin.post("/key/update", {"key": key, "max_budget": -1}, 400)["error"]["param"] == "max_budget"
    admin.get("/key/info", 404, key="sk-not-a-key-at-all-xxxx")
    listed = admin.get("/key/list", return_full_object="true")
    assert listed["total_count"] == 2 and {k["key_alias"] for k in listed["keys"]} == {"mine", "theirs"}
    assert all("key" not in k for k in listed["keys"]), "plain keys are shown once, at generation"


def test_spend_logs_and_report(gw):
    admin = Admin(gw)
    admin.post("/team/new", {"team_id": "reports"})
    a = admin.key(key_alias="a", team_id="reports")
    b = admin.key(key_alias="b", user_id="bob")
    for _ in range(3):
        chat(gw, a)
    chat(gw, b)
    chat(gw, b, model="other")
    chat(gw, b, model="unpriced")
    usage_written(gw)
    logs = admin.get("/spend/logs", key_alias="a")
    assert len(logs["data"]) == 3 and all(r["team_id"] == "reports" and r["cost"] > 0 for r in logs["data"])
    page = admin.get("/spend/logs", user_id="bob", page_size=2)
    assert len(page["data"]) == 2 and page["has_more"]
    rest = admin.get("/spend/logs", user_id="bob", page_size=2, before_id=page["next_before_id"])
    assert len(rest["data"]) == 1 and not rest["has_more"]
    assert admin.get("/spend/logs", model="other", api_key=b)["data"][0]["model_group"] == "other"
    by_key = {r["key_alias"]: r for r in admin.get("/global/spend/report", group_by="key")["data"]}
    assert by_key["a"]["requests"] == 3 and by_key["b"]["unpriced_requests"] == 1
    by_model = {r["model"]: r for r in admin.get("/global/spend/report", group_by="model")["data"]}
    assert by_model["unpriced"]["spend"] == 0 and by_model["unpriced"]["unpriced_requests"] == 1
    report = admin.get("/global/spend/report", group_by="team", start_date=time.strftime("%Y-%m-%d"))
    assert {r["team"] for r in report["data"]} == {"reports", None}
    assert report["unpriced_requests"] == 1
    by_day = admin.get("/global/spend/report", group_by="day")["data"]
    assert by_day[0]["day"] == time.strftime("%Y-%m-%d", time.gmtime())
    assert admin.get("/global/spend/report", group_by="provider")["data"][0]["provider"] == "mock"
    assert admin.get("/global/spend/report", 400, group_by="colour")["error"]["param"] == "group_by"
    assert admin.get("/spend/logs", 400, start_date="yesterday")["error"]["param"] == "start_date"
    for raw in ("inf", "-inf", "nan", "1e300", "-1e300"):  # numbers, but no time: 400, never 503 or 500
        for path, params in (("/spend/logs", {"api_key": b}), ("/spend/logs", {"team_id": "reports"}),
                             ("/spend/logs", {}), ("/global/spend/report", {"group_by": "day"})):
            for name in ("start_date", "end_date"):
                error = admin.get(path, 400, **params, **{name: raw})["error"]
                assert error["param"] == name and error["type"] == "invalid_request_error", (path, name, raw)


# -- restarts and database failures -------------------------------------------------
def test_keys_and_spend_survive_a_restart(start_gateway, gw):
    cost = one_request_cost(gw)
    admin = Admin(gw)
    key = admin.key(max_budget=cost * 2.5)
    assert [outcome(lambda: chat(gw, key)) for _ in range(3)] == ["ok", "ok", "400:budget_exceeded"]
    gw.stop()
    again = start_gateway(config(database_url=f"sqlite:///{gw.db_path}"), key=MASTER)
    assert outcome(lambda: chat(again, key)) == "400:budget_exceeded", "spend rebuilt from the usage database"
    Admin(again).post("/key/update", {"key": key, "max_budget": cost * 3.5})
    assert outcome(lambda: chat(again, key)) == "ok"
    assert outcome(lambda: chat(again, key)) == "400:budget_exceeded"


def test_a_budget_window_is_rebuilt_after_a_restart(start_gateway, gw):
    """A budget with a duration is recounted from the minute rollup, not from an index of rows."""
    cost = one_request_cost(gw)
    admin = Admin(gw)
    key = admin.key(max_budget=cost * 2.5, budget_duration="30d")
    assert [outcome(lambda: chat(gw, key)) for _ in range(3)] == ["ok", "ok", "400:budget_exceeded"]
    gw.stop()
    again = start_gateway(config(database_url=f"sqlite:///{gw.db_path}"), key=MASTER)
    assert outcome(lambda: chat(again, key)) == "400:budget_exceeded", "window spend rebuilt from spend_minutes"
    Admin(again).post("/key/update", {"key": key, "max_budget": cost * 3.5})  # recounted from the rollup too
    assert outcome(lambda: chat(again, key)) == "ok"
    assert outcome(lambda: chat(again, key)) == "400:budget_exceeded"


def test_database_deleted_mid_run(gw):
    admin = Admin(gw)
    key = admin.key(max_budget=1.0)
    chat(gw, key)
    usage_written(gw)
    for suffix in ("", "-wal", "-shm"):
        gw.db_path.with_name(gw.db_path.name + suffix).unlink(missing_ok=True)
    for _ in range(5):
        assert outcome(lambda: chat(gw, key)) == "ok", "cached keys keep working"
    time.sleep(2.5)
    assert "database file was replaced or deleted" in gw.log()
    assert Admin(gw).get("/key/info", key=key)["info"]["key_alias"] is None
    assert httpx.get(gw.url + "/health/readiness").json()["governance"]["database_recreated"] >= 1
    gw.stop()
    rows = [r for r in gw.usage_rows() if r["key_hash"]]
    assert len(rows) >= 5, "rows after the deletion were written to the new file"
    con = sqlite3.connect(gw.db_path)
    assert con.execute("SELECT COUNT(*) FROM gov_keys").fetchone()[0] == 1, "the key was written back"
    con.close()


def test_database_locked_mid_run(gw):
    admin = Admin(gw)
    key = admin.key()
    chat(gw, key)
    usage_written(gw)
    lock = sqlite3.connect(gw.db_path, timeout=5, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        for _ in range(5):
            assert outcome(lambda: chat(gw, key)) == "ok", "requests never wait on the database"
        time.sleep(2.5)
        ready = httpx.get(gw.url + "/health/readiness")
        assert ready.status_code == 503 and "locked" in ready.json()["db"], ready.text
        assert admin.post("/key/generate", {}, 503)["error"]["code"] == "database_unavailable"
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    time.sleep(3)
    assert httpx.get(gw.url + "/health/readiness").status_code == 200
    gw.stop()
    assert len([r for r in gw.usage_rows() if r["key_hash"]]) >= 6, "no row was dropped"


# -- retention ----------------------------------------------------------------------
def test_retention_deletes_old_usage_and_keeps_open_budget_windows(start_gateway, gw):
    """LiteLLM's ``maximum_spend_logs_retention_period``: rows older than it go at start-up; the
    spend minutes of a budget window still open stay (the window is recounted from them), and
    lifetime spend is untouched."""
    cost = one_request_cost(gw)
    admin = Admin(gw)
    budgeted = admin.key(max_budget=cost * 2.5, budget_duration="30d")
    plain = admin.key()
    calls = [outcome(lambda: chat(gw, budgeted, extra_headers={"x-request-id": f"b{i}"})) for i in range(3)]
    assert calls == ["ok", "ok", "400:budget_exceeded"]
    chat(gw, plain, extra_headers={"x-request-id": "ancient"})
    usage_written(gw)
    gw.stop()
    con = sqlite3.connect(gw.db_path, isolation_level=None)
    now = time.time()
    window = window_start(parse_duration("30d"), now)
    if window > now - 600:
        pytest.skip("the 30-day budget window began minutes ago: no row can be both old and inside it")
    plain_hash = con.execute("SELECT key_hash FROM usage_log WHERE request_id = 'ancient'").fetchone()[0]
    budgeted_hash = con.execute("SELECT key_hash FROM usage_log WHERE request_id = 'b0'").fetchone()[0]
    con.execute("UPDATE usage_log SET ts = ts - 300")  # 5 minutes old: past a 1-minute period
    con.execute("UPDATE spend_minutes SET minute = minute - 5")
    con.execute("UPDATE usage_log SET ts = ts - 40 * 86400 WHERE key_hash = ?", (plain_hash,))  # before any window
    con.execute("UPDATE spend_minutes SET minute = minute - 40 * 1440 WHERE kind = 'key' AND id = ?", (plain_hash,))
    old_rows = con.execute("SELECT COUNT(*) FROM usage_log").fetchone()[0]
    con.close()

    again = start_gateway(config(database_url=f"sqlite:///{gw.db_path}", maximum_spend_logs_retention_period="1m"),
                          key=MASTER)
    deadline = time.monotonic() + 15
    while (retention := httpx.get(again.url + "/health/readiness").json()["usage_log"]["retention"])["runs"] < 1:
        assert time.monotonic() < deadline, retention
        time.sleep(0.05)
    assert retention["period_seconds"] == 60 and retention["deleted_rows"] == old_rows == 4  # probe, 2 budgeted, plain
    assert "usage log retention: deleted" in again.log()
    assert outcome(lambda: chat(again, budgeted)) == "400:budget_exceeded", "window spend rebuilt from kept minutes"
    Admin(again).post("/key/update", {"key": budgeted, "max_budget": cost * 3.5})  # recounted after the cleanup
    assert outcome(lambda: chat(again, budgeted)) == "ok"
    assert outcome(lambda: chat(again, budgeted)) == "400:budget_exceeded"
    assert Admin(again).get("/key/info", key=plain)["info"]["spend"] == pytest.approx(cost), "lifetime spend stays"
    again.stop()
    con = sqlite3.connect(gw.db_path)
    assert con.execute("SELECT COUNT(*) FROM usage_log WHERE ts < ?", (now - 60,)).fetchone()[0] == 0
    assert con.execute("SELECT COUNT(*) FROM spend_minutes WHERE id = ?", (plain_hash,)).fetchone()[0] == 0
    assert con.execute("SELECT COUNT(*) FROM spend_minutes WHERE minute < ?", (int(window / 60),)).fetchone()[0] == 0
    kept = con.execute("SELECT COUNT(*) FROM spend_minutes WHERE id = ? AND minute < ?",
                       (budgeted_hash, int((now - 60) / 60))).fetchone()[0]
    con.close()
    assert kept >= 1, "the budget window's minutes from before the period are kept"
    third = start_gateway(config(database_url=f"sqlite:///{gw.db_path}"), key=MASTER)
    assert outcome(lambda: chat(third, budgeted)) == "400:budget_exceeded", "and a restart still counts them"
