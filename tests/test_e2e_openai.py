"""End to end: the official openai SDK -> `fastgw serve` (a real process) -> mock OpenAI upstream."""
from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import openai
import pytest

from conftest import openai_deployment

MASTER = "sk-fastgw-master-test"


@pytest.fixture
def gw(start_gateway, mock_upstream):
    mock_upstream.reset()
    config = {
        "model_list": [
            openai_deployment("gpt-4o-mini", mock_upstream, temperature_default_unused=None),
            openai_deployment("slow-stream", mock_upstream, model="gpt-4o-mini@split=40@delay=0.05"),
            openai_deployment("paced", mock_upstream, model="gpt-4o-mini@split=event@delay=0.25"),
            openai_deployment("one-byte", mock_upstream, model="gpt-4o-mini@split=1"),
            openai_deployment("random-split", mock_upstream, model="gpt-4o-mini@split=random"),
            openai_deployment("rate-limited", mock_upstream, model="x@error=openai-error-429-rate-limit.http"),
            openai_deployment("ctx-too-long", mock_upstream, model="x@error=openai-error-400-context-length.http"),
            openai_deployment("broken-stream", mock_upstream, model="gpt-4o-mini@midstream_error@split=100@delay=0.02"),
            openai_deployment("broken-early", mock_upstream, model="gpt-4o-mini@midstream_error"),
            openai_deployment("truncated", mock_upstream, model="gpt-4o-mini@truncate"),
            openai_deployment("embed", mock_upstream, model="text-embedding-3-small"),
            {"model_name": "azure-gpt", "litellm_params": {"model": "azure/my-deployment", "api_base": mock_upstream.url,
                                                           "api_version": "2024-10-21", "api_key": "azure-secret"}},
            {"model_name": "unreachable", "litellm_params": {"model": "openai/gpt-4o", "api_base": "http://127.0.0.1:9/v1",
                                                             "api_key": "sk-x"}},
        ],
    }
    return start_gateway(config, key=MASTER)


def client(gw, key: str = MASTER) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=20)


def test_chat_non_streaming(gw, mock_upstream):
    resp = client(gw).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Capital?"}],
                                              extra_body={"some_new_field": {"x": 1}})
    assert resp.choices[0].message.content == "The capital of France is Paris."
    assert resp.model == "gpt-4o-mini"
    assert resp.usage.prompt_tokens == 24 and resp.usage.completion_tokens == 8
    sent = json.loads(mock_upstream.requests()[-1]["body"])
    assert sent["some_new_field"] == {"x": 1}, "unknown fields pass through untouched"
    assert mock_upstream.requests()[-1]["headers"]["authorization"] == "Bearer sk-upstream-secret"


@pytest.mark.parametrize("model", ["gpt-4o-mini", "one-byte", "random-split"])
def test_chat_stream_with_usage(gw, mock_upstream, model):
    stream = client(gw).chat.completions.create(model=model, messages=[{"role": "user", "content": "Capital?"}],
                                                stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "The capital of France is Paris."
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 32
    assert all(c.model == model for c in chunks)


def test_stream_chunks_reach_the_client_as_the_upstream_sends_them(gw):
    """No batching that delays a chunk: the upstream writes one event every 250 ms, and each
    reaches the SDK in its own ~250-ms step (a gap under 80 ms means two came together). Only
    the role-only first chunk waits, for the first content chunk: a failure before any content
    can still fail over."""
    stream = client(gw).chat.completions.create(model="paced", messages=[{"role": "user", "content": "Capital?"}],
                                                stream=True, stream_options={"include_usage": True})
    arrivals = []
    for chunk in stream:
        arrivals.append((time.monotonic(), chunk))
    content = [(t, c) for t, c in arrivals if c.choices and c.choices[0].delta.content]
    assert len(content) >= 5
    gaps = [b[0] - a[0] for a, b in zip(arrivals, arrivals[1:])]
    held = [i for i, gap in enumerate(gaps) if gap < 0.08]
    assert held == [0], f"chunks that arrived together (index of the earlier one): {held}; gaps {gaps}"
    assert arrivals[0][1].choices[0].delta.role == "assistant" and arrivals[1] == content[0]
    assert arrivals[-1][1].usage is not None


def test_chat_stream_without_usage_hides_usage_chunk(gw, mock_upstream):
    stream = client(gw).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                                stream=True)
    chunks = list(stream)
    assert all(c.choices for c in chunks), "no usage-only chunk when the client did not ask"
    assert all(c.usage is None for c in chunks)
    sent = json.loads(mock_upstream.requests()[-1]["body"])
    assert sent["stream_options"] == {"include_usage": True}, "the gateway always asks upstream for usage"
    gw.stop()
    rows = gw.usage_rows()
    assert rows[-1]["prompt_tokens"] == 24 and rows[-1]["completion_tokens"] == 8 and rows[-1]["stream"] == 1


def test_tools_stream(gw):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    stream = client(gw).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Paris?"}],
                                                tools=tools, stream=True)
    args = ""
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                args += call.function.arguments or ""
            finish = choice.finish_reason or finish
    assert json.loads(args) and finish == "tool_calls"


def test_embeddings_float_and_base64(gw):
    c = client(gw)
    by_sdk = c.embeddings.create(model="embed", input=["hello", "world"])  # the SDK asks for base64
    as_float = c.embeddings.create(model="embed", input=["hello", "world"], encoding_format="float")
    assert len(by_sdk.data) == len(as_float.data) >= 1
    for a, b in zip(by_sdk.data, as_float.data):
        assert a.embedding == pytest.approx(b.embedding, rel=1e-6)
    assert as_float.model == "embed"


def test_models(gw):
    c = client(gw)
    ids = {m.id for m in c.models.list()}
    assert {"gpt-4o-mini", "embed", "azure-gpt"} <= ids
    assert c.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
    with pytest.raises(openai.NotFoundError):
        c.models.retrieve("missing-model")
    r = httpx.get(gw.url + "/models", headers={"authorization": f"Bearer {MASTER}"})
    assert r.status_code == 200 and r.json()["object"] == "list"


def test_azure_deployment_route(gw, mock_upstream):
    stream = client(gw).chat.completions.create(model="azure-gpt", messages=[{"role": "user", "content": "hi"}],
                                                stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    seen = mock_upstream.requests()[-1]
    assert seen["path"] == "/openai/deployments/my-deployment/chat/completions"
    assert seen["query"] == "api-version=2024-10-21"
    assert seen["headers"]["api-key"] == "azure-secret"


def test_errors(gw):
    c = client(gw)
    with pytest.raises(openai.NotFoundError) as info:
        c.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.AuthenticationError):
        client(gw, "sk-wrong").chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError) as info:
        c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "wizard", "content": "x"}])
    assert info.value.param == "messages[0].role"
    with pytest.raises(openai.BadRequestError) as info:
        c.chat.completions.create(model="gpt-4o-mini", messages=[])
    assert info.value.param == "messages"
    with pytest.raises(openai.RateLimitError) as info:
        c.chat.completions.create(model="rate-limited", messages=[{"role": "user", "content": "x"}])
    assert info.value.response.headers["retry-after"] == "1"
    with pytest.raises(openai.BadRequestError) as info:
        c.chat.completions.create(model="ctx-too-long", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "context_length_exceeded"
    with pytest.raises(openai.APIStatusError) as info:
        c.chat.completions.create(model="unreachable", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 502
    assert "sk-x" not in info.value.response.text and "sk-upstream-secret" not in info.value.response.text


def test_raw_http_errors(gw):
    headers = {"authorization": f"Bearer {MASTER}", "content-type": "application/json"}
    r = httpx.post(gw.base_url + "/chat/completions", content=b"{not json", headers=headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = httpx.post(gw.base_url + "/chat/completions", content=b"[1,2]", headers=headers)
    assert r.status_code == 400
    r = httpx.post(gw.base_url + "/chat/completions", content=b'{"messages": []}', headers=headers)
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    r = httpx.post(gw.base_url + "/chat/completions", content=b"x" * (33 * 1024 * 1024), headers=headers)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    r = httpx.post(gw.base_url + "/chat/completions", json={"model": "gpt-4o-mini", "messages": []},
                   headers={"x-api-key": MASTER})
    assert r.status_code == 400, "x-api-key is accepted too"
    r = httpx.get(gw.url + "/v1/nothing-here", headers=headers)
    assert r.status_code == 404 and set(r.json()["error"]) == {"message", "type", "param", "code"}
    r = httpx.get(gw.base_url + "/chat/completions", headers=headers)
    assert r.status_code == 405 and "error" in r.json()
    r = httpx.post(gw.base_url + "/chat/completions", json={"model": "gpt-4o-mini"}, headers={})
    assert r.status_code == 401


def test_request_id(gw):
    c = client(gw)
    raw = c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                                      extra_headers={"x-request-id": "my-trace-123"})
    assert raw.headers["x-request-id"] == "my-trace-123"
    raw = c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert raw.headers["x-request-id"].startswith("req_")
    r = httpx.post(gw.base_url + "/chat/completions", content=b"{", headers={"authorization": f"Bearer {MASTER}"})
    assert r.headers["x-request-id"]


def test_midstream_error_is_explicit(gw):
    stream = client(gw).chat.completions.create(model="broken-stream", messages=[{"role": "user", "content": "x"}],
                                                stream=True)
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            received.append(chunk)
    assert received, "the error came after content was committed"
    assert "server had an error" in str(info.value)


def test_error_before_first_chunk_is_a_plain_http_error(gw):
    """Nothing was committed yet, so the client gets a status code, not a broken stream."""
    with pytest.raises(openai.InternalServerError):
        client(gw).chat.completions.create(model="broken-early", messages=[{"role": "user", "content": "x"}],
                                           stream=True)


def test_truncated_stream_is_not_a_clean_end(gw):
    r = httpx.post(gw.base_url + "/chat/completions", headers={"authorization": f"Bearer {MASTER}"},
                   json={"model": "truncated", "stream": True, "messages": [{"role": "user", "content": "x"}]})
    body = r.text
    assert "[DONE]" not in body
    assert '"code":"stream_truncated"' in body


def test_usage_log_and_graceful_flush(gw):
    c = client(gw)
    for _ in range(5):
        c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                  extra_headers={"x-request-id": "flush-test"})
    with pytest.raises(openai.RateLimitError):
        c.chat.completions.create(model="rate-limited", messages=[{"role": "user", "content": "x"}])
    assert gw.stop() in (0, -15), "graceful exit on SIGTERM (uvicorn re-raises the signal after shutdown)"
    rows = gw.usage_rows()
    ok = [r for r in rows if r["request_id"] == "flush-test"]
    assert len(ok) == 5
    row = ok[0]
    assert row["status"] == 200 and row["model_group"] == "gpt-4o-mini" and row["provider"] == "openai"
    assert row["prompt_tokens"] == 24 and row["completion_tokens"] == 8 and row["latency_ms"] > 0
    assert row["key_hash"] and MASTER not in json.dumps(rows)
    limited = [r for r in rows if r["model_group"] == "rate-limited"]
    assert limited and limited[0]["status"] == 429 and limited[0]["error_type"] == "rate_limit_exceeded"


def test_client_disconnect_cancels_upstream_and_is_recorded(gw):
    """Read the first bytes of a slow stream, then drop the connection."""
    body = json.dumps({"model": "slow-stream", "stream": True, "messages": [{"role": "user", "content": "x"}]})
    request = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {MASTER}\r\n"
               f"content-type: application/json\r\nx-request-id: will-disconnect\r\n"
               f"content-length: {len(body)}\r\n\r\n{body}").encode()
    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        sock.sendall(request)
        assert b"200 OK" in sock.recv(4096)
    time.sleep(0.5)
    gw.stop()
    rows = [r for r in gw.usage_rows() if r["request_id"] == "will-disconnect"]
    assert len(rows) == 1 and rows[0]["error_type"] == "client_disconnected"


def test_client_gone_mid_body_is_counted_not_an_internal_error(gw):
    """Half a body, then the connection drops: a 499 in the metrics, no internal error logged."""
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {MASTER}\r\n"
            f"content-type: application/json\r\ncontent-length: 100\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        sock.sendall(head + b'{"model": "gpt-4o-mini"')
        time.sleep(0.2)
    deadline = time.monotonic() + 5
    while True:
        metrics = httpx.get(gw.url + "/metrics").text
        if 'status="499"' in metrics or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert any(line.startswith("fastgw_requests_total{") and 'status="499"' in line and line.endswith(" 1.0")
               for line in metrics.splitlines())
    assert client(gw).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert "internal error" not in gw.log() and "Exception in ASGI application" not in gw.log()


def test_concurrent_requests(gw):
    c = client(gw)
    errors = []

    def work():
        try:
            for _ in range(5):
                c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


@pytest.mark.parametrize("workers, window_us", [(1, "0"), (2, "500")])
def test_busy_polling_off_or_long_changes_no_answer(start_gateway, mock_upstream, workers, window_us):
    """``FASTGW_BUSY_POLL_US`` (what ``--busy-poll-us`` sets) reaches every worker; polling
    or not, answers and streams are the same."""
    mock_upstream.reset()
    gw = start_gateway({"model_list": [openai_deployment("gpt-4o-mini", mock_upstream)]}, workers=workers,
                       env={"FASTGW_BUSY_POLL_US": window_us}, key=MASTER)
    messages = [{"role": "user", "content": "Capital?"}]
    for _ in range(3):
        resp = client(gw).chat.completions.create(model="gpt-4o-mini", messages=messages)
        assert resp.choices[0].message.content == "The capital of France is Paris."
        chunks = list(client(gw).chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True,
                                                         stream_options={"include_usage": True}))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == resp.choices[0].message.content
        assert chunks[-1].usage.completion_tokens == 8
    assert "not a number of microseconds" not in (gw.workdir / "gateway.log").read_text()
