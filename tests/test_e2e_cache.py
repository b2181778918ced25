"""End to end: the response cache through `fastgw serve` (a real process) and the openai SDK.

The mock upstream counts what reaches it, so "served from the cache" means "the upstream
never saw it". Redis tests use the machine's Redis with a unique namespace, cleaned up
afterwards; Redis failing is simulated with a TCP proxy the test owns (never by stopping
the server).
"""
from __future__ import annotations

import json
import socket
import threading
import time
import uuid

import httpx
import openai
import pytest
import redis

from conftest import free_port, openai_deployment

MASTER = "sk-fastgw-cache-test"
MESSAGES = [{"role": "user", "content": "Capital of France?"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def models(upstream) -> list[dict]:
    return [
        openai_deployment("gpt-4o-mini", upstream),
        openai_deployment("rate-limited", upstream, model="x@error=openai-error-429-rate-limit.http"),
        openai_deployment("truncated", upstream, model="gpt-4o-mini@truncate"),
        openai_deployment("embed", upstream, model="text-embedding-3-small"),
    ]


def client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=MASTER, max_retries=0, timeout=20)


def chat(gw, **kwargs):
    """(response, x-fastgw-cache header) of a non-streamed chat completion."""
    kwargs.setdefault("messages", MESSAGES)
    raw = client(gw).chat.completions.with_raw_response.create(model=kwargs.pop("model", "gpt-4o-mini"), **kwargs)
    return raw.parse(), raw.headers.get("x-fastgw-cache")


def stream(gw, **kwargs):
    """(chunks, x-fastgw-cache header) of a streamed chat completion, read to the end."""
    kwargs.setdefault("messages", MESSAGES)
    with client(gw).chat.completions.with_streaming_response.create(
            model=kwargs.pop("model", "gpt-4o-mini"), stream=True, **kwargs) as raw:
        return list(raw.parse()), raw.headers.get("x-fastgw-cache")


def chat_requests(upstream) -> list[dict]:
    return [r for r in upstream.requests() if r["path"].endswith("/chat/completions")]


def text_of(chunks) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.fixture
def local_gw(start_gateway, mock_upstream):
    mock_upstream.reset()
    cache = {"cache": True, "cache_params": {"type": "local", "ttl": 60}}
    return start_gateway({"model_list": models(mock_upstream), "litellm_settings": cache}, key=MASTER)


def test_hit_does_not_reach_the_upstream(local_gw, mock_upstream):
    first, state1 = chat(local_gw)
    second, state2 = chat(local_gw)
    assert (state1, state2) == ("miss", "hit")
    assert len(chat_requests(mock_upstream)) == 1
    assert second.choices[0].message.content == first.choices[0].message.content == "The capital of France is Paris."
    assert second.usage.total_tokens == first.usage.total_tokens and second.model == "gpt-4o-mini"
    _, state3 = chat(local_gw, temperature=0.7)
    assert state3 == "miss" and len(chat_requests(mock_upstream)) == 2, "another parameter, another entry"
    raw = httpx.post(local_gw.base_url + "/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES},
                     headers={"authorization": f"Bearer {MASTER}"})
    assert raw.headers["x-fastgw-cache"] == "hit" and float(raw.headers["x-fastgw-cost"]) == 0
    local_gw.stop()
    rows = local_gw.usage_rows()
    assert [r["cache_hit"] for r in rows] == [0, 1, 0, 1]
    hit = rows[1]
    assert hit["status"] == 200 and hit["attempts"] == 0 and hit["cost"] == 0 and hit["deployment_id"] is None


def test_cache_object_and_user_are_not_sent_upstream_or_part_of_the_key(local_gw, mock_upstream):
    chat(local_gw, user="alice", extra_body={"cache": {"ttl": 30}})
    _, state = chat(local_gw, user="bob")
    assert state == "hit"
    sent = json.loads(chat_requests(mock_upstream)[0]["body"])
    assert "cache" not in sent and sent["user"] == "alice"


def test_per_request_bypass_through_the_body(local_gw, mock_upstream):
    chat(local_gw)
    _, state = chat(local_gw, extra_body={"cache": {"no-cache": True}})
    assert state == "miss" and len(chat_requests(mock_upstream)) == 2, "no-cache: read skipped"
    _, state = chat(local_gw, temperature=0.1, extra_body={"cache": {"no-store": True}})
    _, state = chat(local_gw, temperature=0.1)
    assert state == "miss" and len(chat_requests(mock_upstream)) == 4, "no-store: nothing was kept"
    _, state = chat(local_gw, temperature=0.1)
    assert state == "hit"


def test_per_request_bypass_through_the_cache_control_header(local_gw, mock_upstream):
    chat(local_gw)
    _, state = chat(local_gw, extra_headers={"Cache-Control": "no-cache"})
    assert state == "miss"
    _, state = chat(local_gw, extra_headers={"Cache-Control": "max-age=0"})
    assert state == "miss"
    _, state = chat(local_gw, extra_headers={"Cache-Control": "max-age=3600"})
    assert state == "hit"
    chat(local_gw, temperature=0.2, extra_headers={"Cache-Control": "no-store"})
    _, state = chat(local_gw, temperature=0.2)
    assert state == "miss" and len(chat_requests(mock_upstream)) == 5


def test_namespaces_keep_entries_apart(local_gw, mock_upstream):
    chat(local_gw, extra_body={"cache": {"namespace": "team-a"}})
    _, state = chat(local_gw, extra_body={"cache": {"namespace": "team-b"}})
    assert state == "miss"
    _, state = chat(local_gw, extra_body={"cache": {"namespace": "team-a"}})
    assert state == "hit"
    _, state = chat(local_gw)
    assert state == "miss", "the default namespace is another one"
    assert len(chat_requests(mock_upstream)) == 3


def test_ttl_expiry(start_gateway, mock_upstream):
    mock_upstream.reset()
    gw = start_gateway({"model_list": models(mock_upstream),
                        "litellm_settings": {"cache": True, "cache_params": {"ttl": 1}}}, key=MASTER)
    chat(gw)
    assert chat(gw)[1] == "hit"
    chat(gw, temperature=0.3, extra_body={"cache": {"ttl": 60}})
    time.sleep(1.3)
    assert chat(gw)[1] == "miss", "the config's ttl passed"
    assert chat(gw, temperature=0.3)[1] == "hit", "the per-request ttl outlives the config's"
    assert len(chat_requests(mock_upstream)) == 3


def test_stream_served_from_a_non_streamed_answer(local_gw, mock_upstream):
    answer, _ = chat(local_gw)
    chunks, state = stream(local_gw, stream_options={"include_usage": True})
    assert state == "hit" and len(chat_requests(mock_upstream)) == 1
    assert text_of(chunks) == answer.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == answer.usage.total_tokens
    plain, _ = stream(local_gw)
    assert all(c.choices for c in plain) and all(c.usage is None for c in plain), "usage only when asked"
    assert all(c.model == "gpt-4o-mini" for c in chunks)


def test_non_stream_served_from_a_streamed_answer(local_gw, mock_upstream):
    chunks, state = stream(local_gw)
    assert state == "miss"
    answer, state = chat(local_gw)
    assert state == "hit" and len(chat_requests(mock_upstream)) == 1
    assert answer.choices[0].message.content == text_of(chunks) and answer.choices[0].finish_reason == "stop"
    assert answer.usage.total_tokens == 32, "the gateway's own usage chunk was kept"
    assert answer.object == "chat.completion" and answer.model == "gpt-4o-mini"


def test_streamed_tool_calls_are_served_to_a_non_streamed_request(local_gw, mock_upstream):
    stream(local_gw, tools=TOOLS)
    answer, state = chat(local_gw, tools=TOOLS)
    assert state == "hit" and len(chat_requests(mock_upstream)) == 1
    call = answer.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    assert answer.choices[0].finish_reason == "tool_calls"
    again, state = stream(local_gw, tools=TOOLS)
    args = "".join(tc.function.arguments or "" for c in again if c.choices
                   for tc in c.choices[0].delta.tool_calls or [])
    assert state == "hit" and json.loads(args) == {"city": "Paris"}


def test_errors_and_truncated_streams_are_never_cached(local_gw, mock_upstream):
    for _ in range(2):
        with pytest.raises(openai.RateLimitError):
            chat(local_gw, model="rate-limited")
    body = {"model": "truncated", "stream": True, "messages": MESSAGES}
    for _ in range(2):
        r = httpx.post(local_gw.base_url + "/chat/completions", json=body,
                       headers={"authorization": f"Bearer {MASTER}"})
        assert "[DONE]" not in r.text and r.headers["x-fastgw-cache"] == "miss"
    models_seen = [json.loads(r["body"])["model"] for r in chat_requests(mock_upstream)]
    assert models_seen.count("gpt-4o-mini@truncate") >= 2
    assert models_seen.count("x@error=openai-error-429-rate-limit.http") >= 2


def test_embeddings_are_cached(local_gw, mock_upstream):
    c = client(local_gw)
    first = c.embeddings.with_raw_response.create(model="embed", input=["hello"], encoding_format="float")
    second = c.embeddings.with_raw_response.create(model="embed", input=["hello"], encoding_format="float")
    assert (first.headers["x-fastgw-cache"], second.headers["x-fastgw-cache"]) == ("miss", "hit")
    assert first.parse().data[0].embedding == second.parse().data[0].embedding
    assert len([r for r in mock_upstream.requests() if r["path"].endswith("/embeddings")]) == 1


def test_bad_cache_control_is_a_400(local_gw):
    with pytest.raises(openai.BadRequestError) as info:
        chat(local_gw, extra_body={"cache": {"ttl": "long"}})
    assert info.value.param == "cache.ttl"


def test_cache_off_sets_no_header_and_still_strips_the_control(start_gateway, mock_upstream):
    mock_upstream.reset()
    gw = start_gateway({"model_list": models(mock_upstream)}, key=MASTER)
    _, state = chat(gw, extra_body={"cache": {"no-cache": True}})
    assert state is None and "cache" not in json.loads(chat_requests(mock_upstream)[0]["body"])


# Redis ------------------------------------------------------------------------------

@pytest.fixture
def redis_namespace():
    namespace = f"fastgw-test-{uuid.uuid4().hex[:12]}"
    yield namespace
    r = redis.Redis(host="127.0.0.1", port=6379)
    keys = list(r.scan_iter(f"{namespace}:*"))
    if keys:
        r.delete(*keys)
    r.close()


def redis_config(upstream, namespace: str, port: int = 6379, **params) -> dict:
    return {"model_list": models(upstream), "litellm_settings": {"cache": True, "cache_params": {
        "type": "redis", "host": "127.0.0.1", "port": port, "namespace": namespace, "ttl": 60, **params}}}


def test_redis_backend(start_gateway, mock_upstream, redis_namespace):
    mock_upstream.reset()
    gw = start_gateway(redis_config(mock_upstream, redis_namespace), key=MASTER)
    assert chat(gw)[1] == "miss" and chat(gw)[1] == "hit"
    r = redis.Redis(host="127.0.0.1", port=6379)
    keys = list(r.scan_iter(f"{redis_namespace}:*"))
    assert len(keys) == 1 and 0 < r.ttl(keys[0]) <= 60
    stored = json.loads(r.get(keys[0]))
    assert stored["response"]["choices"][0]["message"]["content"] == "The capital of France is Paris."
    r.close()
    gw.stop()
    gw2 = start_gateway(redis_config(mock_upstream, redis_namespace), key=MASTER)
    assert chat(gw2)[1] == "hit", "entries outlive the process that stored them"
    assert len(chat_requests(mock_upstream)) == 1


def test_streamed_answer_shared_through_redis(start_gateway, mock_upstream, redis_namespace):
    mock_upstream.reset()
    gw = start_gateway(redis_config(mock_upstream, redis_namespace), key=MASTER)
    stream(gw, stream_options={"include_usage": True})
    r = redis.Redis(host="127.0.0.1", port=6379)
    for _ in range(200):  # a stream is stored in the background once its last chunk went out
        if list(r.scan_iter(f"{redis_namespace}:*")):
            break
        time.sleep(0.01)
    r.close()
    answer, state = chat(gw)
    assert state == "hit" and answer.choices[0].message.content == "The capital of France is Paris."


def test_redis_where_nothing_listens_serves_uncached(start_gateway, mock_upstream, redis_namespace):
    mock_upstream.reset()
    gw = start_gateway(redis_config(mock_upstream, redis_namespace, port=free_port()), key=MASTER)
    for _ in range(4):
        answer, state = chat(gw)
        assert state == "miss" and answer.choices[0].message.content
    assert len(chat_requests(mock_upstream)) == 4
    metrics = httpx.get(gw.url + "/metrics").text
    assert 'fastgw_cache_backend_errors_total{backend="redis"' in metrics
    gw.stop()
    assert "cache backend redis failed" in gw.log()


class TCPProxy:
    """A proxy to Redis that the test can take down and bring back on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client_sock, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._sockets += [client_sock, upstream]
            for a, b in ((client_sock, upstream), (upstream, client_sock)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            for s in self._sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self._sockets.clear()


def test_redis_going_away_mid_test_and_coming_back(start_gateway, mock_upstream, redis_namespace):
    proxy = TCPProxy(6379)
    proxy.start()
    try:
        mock_upstream.reset()
        gw = start_gateway(redis_config(mock_upstream, redis_namespace, port=proxy.port, failure_cooldown=0.5),
                           key=MASTER)
        assert chat(gw)[1] == "miss" and chat(gw)[1] == "hit"
        proxy.stop()
        for _ in range(5):
            answer, state = chat(gw)
            assert state == "miss" and answer.choices[0].message.content == "The capital of France is Paris."
        assert len(chat_requests(mock_upstream)) == 6, "served uncached, never an error"
        proxy.start()
        states = []
        for _ in range(50):  # after the cooldown one probe reconnects and the cache is back
            states.append(chat(gw)[1])
            if states[-1] == "hit":
                break
            time.sleep(0.1)
        assert states[-1] == "hit"
        metrics = httpx.get(gw.url + "/metrics").text
        assert "fastgw_cache_backend_errors_total" in metrics and "fastgw_cache_backend_skipped_total" in metrics
        gw.stop()
        assert "cache backend redis failed" in gw.log()
    finally:
        proxy.stop()
