"""End to end through the official openai SDK: retries, failover, fallbacks, cooldowns, broken streams.

Each scenario sends one request to ``fastgw serve`` in front of fault-injecting mock
upstreams (``tests/mocks/faults.py``) and checks which deployment served it
(``x-fastgw-deployment``), how many attempts it took (``x-fastgw-attempts``, the usage
log) and that the client got either a complete answer or an explicit error.
"""
from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from conftest import openai_deployment

MASTER = "sk-fastgw-master-router"
ANSWER = "The capital of France is Paris."
MESSAGES = [{"role": "user", "content": "Capital of France?"}]
FIRST = 1_000_000.0  # weights that make the faulty deployment the first pick
LAST = 0.000001


def dep(name: str, upstream, model: str, dep_id: str, **params: object) -> dict:
    entry = openai_deployment(name, upstream, model=model, **params)
    entry["model_info"] = {"id": dep_id}
    return entry


@pytest.fixture
def gw(start_gateway, mock_upstream):
    mock_upstream.reset()
    m = mock_upstream
    config = {
        "model_list": [
            dep("retry-429", m, "gpt-4o-mini@fail=429x2@retry_after_ms=50", "r429"),
            dep("r500", m, "gpt-4o-mini@status=500", "r500-bad", weight=FIRST),
            dep("r500", m, "gpt-4o-mini@k=r500", "r500-good", weight=LAST),
            dep("reset", m, "gpt-4o-mini@reset_before_headers", "reset-bad", weight=FIRST),
            dep("reset", m, "gpt-4o-mini@k=reset", "reset-good", weight=LAST),
            dep("cut", m, "gpt-4o-mini@reset_midstream", "cut-only"),
            dep("stall", m, "gpt-4o-mini@stall_first_byte=3", "stall-bad", weight=FIRST, timeout=0.5),
            dep("stall", m, "gpt-4o-mini@k=stall", "stall-good", weight=LAST),
            dep("stall-mid", m, "gpt-4o-mini@stall_midstream=3", "stall-mid-only"),
            dep("malformed", m, "gpt-4o-mini@malformed_sse", "malformed-bad", weight=FIRST),
            dep("malformed", m, "gpt-4o-mini@k=malformed", "malformed-good", weight=LAST),
            dep("inband", m, "gpt-4o-mini@midstream_error", "inband-bad", weight=FIRST),
            dep("inband", m, "gpt-4o-mini@k=inband", "inband-good", weight=LAST),
            dep("inband-late", m, "gpt-4o-mini@midstream_error@split=100@delay=0.02", "inband-late-only"),
            dep("small", m, "x@error=openai-error-400-context-length.http", "small-only"),
            dep("large", m, "gpt-4o-mini@k=large", "large-only"),
            dep("filtered", m, "x@error=azure-error-400-content-filter.http", "filtered-only"),
            dep("safe", m, "gpt-4o-mini@k=safe", "safe-only"),
            dep("locked", m, "gpt-4o-mini@status=401", "locked-only"),
            dep("backup", m, "gpt-4o-mini@k=backup", "backup-only"),
            dep("flaky", m, "gpt-4o-mini@status=500@k=f1", "flaky-1"),
            dep("flaky", m, "gpt-4o-mini@status=500@k=f2", "flaky-2"),
            dep("flaky-fb", m, "gpt-4o-mini@status=500@k=g1", "flaky-fb-1"),
            dep("flaky-fb", m, "gpt-4o-mini@status=500@k=g2", "flaky-fb-2"),
        ],
        "router_settings": {
            "num_retries": 2, "allowed_fails": 0, "cooldown_time": 60, "max_retry_delay": 2, "timeout": 20,
            "stream_timeout": 0.5, "stream_idle_timeout": 0.5, "fallbacks": [{"flaky-fb": ["backup"]}],
        },
        "litellm_settings": {
            "context_window_fallbacks": [{"small": ["large"]}],
            "content_policy_fallbacks": [{"filtered": ["safe"]}],
        },
    }
    return start_gateway(config, key=MASTER)


def client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=MASTER, max_retries=0, timeout=20)


def chat(gw, model: str, **kwargs: object):
    """A non-streaming call; returns (response, headers)."""
    raw = client(gw).chat.completions.with_raw_response.create(model=model, messages=MESSAGES, **kwargs)
    return raw.parse(), raw.headers


def stream_text(gw, model: str) -> tuple[str, httpx.Headers]:
    """A streaming call through the SDK that must complete; returns (text, headers)."""
    raw = client(gw).chat.completions.with_raw_response.create(model=model, messages=MESSAGES, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    return text, raw.headers


def raw_stream(gw, model: str) -> httpx.Response:
    return httpx.post(gw.base_url + "/chat/completions", headers={"authorization": f"Bearer {MASTER}"},
                      json={"model": model, "stream": True, "messages": MESSAGES}, timeout=20)


def rows_for(gw, request_id: str) -> list[dict]:
    gw.stop()
    return [r for r in gw.usage_rows() if r["request_id"] == request_id]


def test_429_with_retry_after_then_success(gw):
    resp, headers = chat(gw, "retry-429", extra_headers={"x-request-id": "r429"})
    assert resp.choices[0].message.content == ANSWER
    assert headers["x-fastgw-deployment"] == "r429" and headers["x-fastgw-attempts"] == "3"
    rows = rows_for(gw, "r429")
    assert [(r["status"], r["retried"], r["attempts"]) for r in rows] == [(429, 1, 1), (429, 1, 2), (200, 0, 3)]
    assert rows[0]["error_type"] == "rate_limit_exceeded"


def test_500_fails_over_to_the_other_deployment(gw):
    resp, headers = chat(gw, "r500", extra_headers={"x-request-id": "r500"})
    assert resp.choices[0].message.content == ANSWER
    assert headers["x-fastgw-deployment"] == "r500-good" and headers["x-fastgw-attempts"] == "2"
    assert "x-fastgw-fallback" not in headers
    rows = rows_for(gw, "r500")
    assert [(r["deployment_id"], r["status"], r["retried"]) for r in rows] == [("r500-bad", 500, 1),
                                                                               ("r500-good", 200, 0)]
    assert rows[-1]["attempts"] == 2 and rows[-1]["prompt_tokens"] > 0
    # a failed attempt reported no usage, so it costs nothing: the log's spend (what a restart
    # rebuilds budgets from) equals what the live budget counters were charged
    assert (rows[0]["prompt_tokens"], rows[0]["completion_tokens"], rows[0]["cost"]) == (0, 0, 0.0)


def test_reset_before_headers_fails_over(gw):
    resp, headers = chat(gw, "reset")
    assert resp.choices[0].message.content == ANSWER
    assert headers["x-fastgw-deployment"] == "reset-good" and headers["x-fastgw-attempts"] == "2"
    text, headers = stream_text(gw, "reset")
    assert text == ANSWER and headers["x-fastgw-deployment"] == "reset-good"


def test_reset_midstream_ends_with_an_explicit_error(gw):
    stream = client(gw).chat.completions.create(model="cut", messages=MESSAGES, stream=True,
                                                extra_headers={"x-request-id": "cut"})
    received = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk)
    assert received, "content was committed before the cut"
    r = raw_stream(gw, "cut")
    assert r.status_code == 200 and r.headers["x-fastgw-attempts"] == "1"
    assert "[DONE]" not in r.text and '"code":"connection_error"' in r.text
    rows = rows_for(gw, "cut")
    assert len(rows) == 1 and rows[0]["error_type"] == "connection_error" and rows[0]["completion_tokens"] > 0, \
        "the partial usage is recorded with the error"


def test_stall_before_first_byte_fails_over(gw):
    text, headers = stream_text(gw, "stall")
    assert text == ANSWER
    assert headers["x-fastgw-deployment"] == "stall-good" and headers["x-fastgw-attempts"] == "2"


def test_stall_before_response_non_streaming_fails_over(gw):
    resp, headers = chat(gw, "stall")
    assert resp.choices[0].message.content == ANSWER
    assert headers["x-fastgw-deployment"] == "stall-good" and headers["x-fastgw-attempts"] == "2"


def test_stall_midstream_hits_the_idle_timeout(gw):
    r = raw_stream(gw, "stall-mid")
    assert r.status_code == 200
    assert '"delta":{"content":' in r.text, "the first half was relayed"
    assert "[DONE]" not in r.text
    last = [line for line in r.text.split("\n") if line.startswith("data: ")][-1]
    error = json.loads(last[6:])["error"]
    assert error["code"] == "timeout"


def test_malformed_sse_fails_over(gw):
    text, headers = stream_text(gw, "malformed")
    assert text == ANSWER
    assert headers["x-fastgw-deployment"] == "malformed-good" and headers["x-fastgw-attempts"] == "2"


def test_error_event_before_content_fails_over(gw):
    text, headers = stream_text(gw, "inband")
    assert text == ANSWER
    assert headers["x-fastgw-deployment"] == "inband-good" and headers["x-fastgw-attempts"] == "2"


def test_error_event_after_content_is_explicit(gw):
    r = raw_stream(gw, "inband-late")
    assert r.status_code == 200 and '"content":"The"' in r.text
    assert "[DONE]" not in r.text and '"error":' in r.text


def test_context_window_fallback(gw):
    resp, headers = chat(gw, "small")
    assert resp.choices[0].message.content == ANSWER and resp.model == "small"
    assert headers["x-fastgw-fallback"] == "large" and headers["x-fastgw-deployment"] == "large-only"
    assert headers["x-fastgw-attempts"] == "2", "a context-length error is not retried"


def test_content_policy_fallback(gw):
    text, headers = stream_text(gw, "filtered")
    assert text == ANSWER
    assert headers["x-fastgw-fallback"] == "safe" and headers["x-fastgw-attempts"] == "2"


def test_per_request_fallbacks(gw, mock_upstream):
    resp, headers = chat(gw, "locked", extra_body={"fallbacks": ["backup"]})
    assert resp.choices[0].message.content == ANSWER
    assert headers["x-fastgw-fallback"] == "backup" and headers["x-fastgw-deployment"] == "backup-only"
    assert headers["x-fastgw-attempts"] == "2", "a 401 is not retried"
    sent = [json.loads(r["body"]) for r in mock_upstream.requests() if r["path"] == "/v1/chat/completions"]
    assert sent and all("fallbacks" not in body for body in sent), "stripped before going upstream"
    with pytest.raises(openai.BadRequestError) as info:
        chat(gw, "locked", extra_body={"fallbacks": ["no-such-group"]})
    assert info.value.param == "fallbacks"


def test_without_fallbacks_the_error_says_what_happened(gw):
    with pytest.raises(openai.AuthenticationError) as info:
        chat(gw, "locked")
    headers = info.value.response.headers
    assert headers["x-fastgw-deployment"] == "locked-only" and headers["x-fastgw-attempts"] == "1"
    assert "sk-upstream-secret" not in info.value.response.text


def test_all_deployments_cooling_down(gw, mock_upstream):
    with pytest.raises(openai.InternalServerError) as info:
        chat(gw, "flaky")
    assert info.value.response.headers["x-fastgw-attempts"] == "2", "both deployments tried, then both cooled"
    seen = len(mock_upstream.requests())
    with pytest.raises(openai.APIStatusError) as info:
        chat(gw, "flaky")
    assert info.value.status_code == 503 and info.value.code == "deployments_cooling_down"
    assert "cooling down" in info.value.message
    assert int(info.value.response.headers["retry-after"]) > 0
    assert info.value.response.headers["x-fastgw-attempts"] == "0"
    assert len(mock_upstream.requests()) == seen, "answered at once, without calling an upstream"
    health = httpx.get(gw.url + "/health", headers={"authorization": f"Bearer {MASTER}"}).json()
    flaky = [d for d in health["deployments"] if d["model_name"] == "flaky"]
    assert {d["state"] for d in flaky} == {"cooling_down"} and all(d["last_error"] for d in flaky)
    assert all(d["cooling_down_until"] for d in flaky)
    assert "sk-upstream-secret" not in json.dumps(health)
    assert httpx.get(gw.url + "/health").status_code == 401


def test_cooling_down_group_goes_to_its_fallbacks(gw, mock_upstream):
    resp, headers = chat(gw, "flaky-fb")
    assert headers["x-fastgw-fallback"] == "backup" and headers["x-fastgw-attempts"] == "3"
    seen = len(mock_upstream.requests())
    resp, headers = chat(gw, "flaky-fb")
    assert resp.choices[0].message.content == ANSWER
    assert headers["x-fastgw-fallback"] == "backup" and headers["x-fastgw-attempts"] == "1"
    assert len(mock_upstream.requests()) == seen + 1, "only the fallback was called"


def test_background_health_checks_cool_a_dead_deployment(start_gateway, mock_upstream):
    m = mock_upstream
    config = {
        "model_list": [dep("checked", m, "gpt-4o-mini@status=500@k=hc", "hc-bad"),
                       dep("checked", m, "gpt-4o-mini@k=hc-good", "hc-good")],
        "router_settings": {"allowed_fails": 0, "cooldown_time": 60},
        "general_settings": {"background_health_checks": True, "health_check_interval": 0.2},
    }
    gw = start_gateway(config, key=MASTER)
    states: dict = {}
    for _ in range(100):
        report = httpx.get(gw.url + "/health", headers={"authorization": f"Bearer {MASTER}"}).json()
        states = {d["id"]: d for d in report["deployments"]}
        if states["hc-bad"]["state"] == "cooling_down" and states["hc-good"].get("last_check_ok"):
            break
        time.sleep(0.1)
    assert states["hc-bad"]["state"] == "cooling_down" and states["hc-bad"]["last_check_ok"] is False
    assert states["hc-good"]["state"] == "healthy" and states["hc-good"]["last_check_ok"] is True
    _, headers = chat(gw, "checked")
    assert headers["x-fastgw-deployment"] == "hc-good" and headers["x-fastgw-attempts"] == "1"
