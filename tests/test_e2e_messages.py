"""End to end for the Anthropic-format ingress and the Anthropic provider, through the
official anthropic and openai SDKs against `fastgw serve` and mock upstreams."""
from __future__ import annotations

import json

import anthropic
import openai
import pytest

from conftest import openai_deployment

MASTER = "sk-fastgw-master-test"


@pytest.fixture
def gw(start_gateway, mock_upstream):
    mock_upstream.reset()

    def claude(name: str, model: str = "claude-sonnet-4-20250514") -> dict:
        return {"model_name": name, "litellm_params": {"model": f"anthropic/{model}", "api_base": mock_upstream.url,
                                                       "api_key": "sk-ant-upstream"}}

    config = {"model_list": [
        claude("claude"),
        claude("claude-split", "claude-sonnet-4-20250514@split=1"),
        claude("claude-broken", "claude-sonnet-4-20250514@midstream_error@split=200@delay=0.01"),
        claude("claude-truncated", "claude-sonnet-4-20250514@truncate=0.8@split=200@delay=0.01"),
        claude("claude-cut-early", "claude-sonnet-4-20250514@truncate=0.3"),
        claude("claude-429", "claude-sonnet-4-20250514@error=429"),
        openai_deployment("gpt", mock_upstream),
        {"model_name": "mock", "litellm_params": {"model": "mock/m"}},
    ]}
    return start_gateway(config, key=MASTER)


def ac(gw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=MASTER, max_retries=0)


def oc(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=MASTER, max_retries=0)


def test_native_passthrough_keeps_every_field(gw, mock_upstream):
    system = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    msg = ac(gw).messages.create(model="claude", max_tokens=64, system=system, extra_body={"top_k": 5},
                                 messages=[{"role": "user", "content": "Capital of France?"}],
                                 extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"})
    assert msg.content[0].text == "The capital of France is Paris."
    seen = mock_upstream.requests()[-1]
    sent = json.loads(seen["body"])
    assert sent["system"] == system and sent["top_k"] == 5 and sent["model"] == "claude-sonnet-4-20250514"
    assert seen["headers"]["x-api-key"] == "sk-ant-upstream"
    assert "prompt-caching-2024-07-31" in seen["headers"].get("anthropic-beta", "")


@pytest.mark.parametrize("model", ["claude", "claude-split"])
def test_native_stream(gw, model):
    with ac(gw).messages.stream(model=model, max_tokens=64,
                                messages=[{"role": "user", "content": "Capital of France?"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.usage.output_tokens > 0
    gw.stop()
    row = gw.usage_rows()[-1]
    assert row["endpoint"] == "messages" and row["provider"] == "anthropic" and row["completion_tokens"] > 0


@pytest.mark.parametrize("model", ["gpt", "mock"])
def test_translated_to_other_providers(gw, model):
    msg = ac(gw).messages.create(model=model, max_tokens=64, system="Be brief.",
                                 messages=[{"role": "user", "content": "Capital of France?"}])
    assert msg.type == "message" and msg.content[0].type == "text" and msg.content[0].text
    assert msg.stop_reason == "end_turn" and msg.usage.output_tokens > 0
    with ac(gw).messages.stream(model=model, max_tokens=64,
                                messages=[{"role": "user", "content": "Capital of France?"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == final.content[0].text and final.stop_reason == "end_turn"


def test_translated_tool_use_stream(gw):
    tools = [{"name": "get_weather", "description": "weather", "input_schema": {"type": "object"}}]
    with ac(gw).messages.stream(model="gpt", max_tokens=64, tools=tools,
                                messages=[{"role": "user", "content": "Weather in Paris?"}]) as stream:
        final = stream.get_final_message()
    blocks = [b for b in final.content if b.type == "tool_use"]
    assert blocks and blocks[0].name == "get_weather" and isinstance(blocks[0].input, dict)
    assert final.stop_reason == "tool_use"


def test_openai_sdk_against_anthropic_upstream(gw):
    c = oc(gw)
    resp = c.chat.completions.create(model="claude", messages=[{"role": "user", "content": "Capital of France?"}])
    assert resp.choices[0].message.content == "The capital of France is Paris."
    assert resp.usage.prompt_tokens == 21 and resp.model == "claude"
    chunks = list(c.chat.completions.create(model="claude-split", stream=True,
                                            messages=[{"role": "user", "content": "Capital of France?"}]))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert all(ch.choices for ch in chunks), "usage chunk hidden when not asked for"


def test_errors_in_anthropic_shape(gw):
    with pytest.raises(anthropic.RateLimitError) as info:
        ac(gw).messages.create(model="claude-429", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert info.value.response.headers.get("retry-after")
    with pytest.raises(anthropic.NotFoundError):
        ac(gw).messages.create(model="nope", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    import httpx

    r = httpx.post(gw.url + "/v1/messages", headers={"x-api-key": MASTER},
                   json={"model": "claude", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400 and r.json()["type"] == "error"
    assert r.json()["error"]["type"] == "invalid_request_error" and "max_tokens" in r.json()["error"]["message"]
    bad = anthropic.Anthropic(base_url=gw.url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="claude", max_tokens=10, messages=[{"role": "user", "content": "x"}])


def test_midstream_error_reaches_the_client(gw):
    with pytest.raises(anthropic.APIStatusError):
        with ac(gw).messages.stream(model="claude-broken", max_tokens=64,
                                    messages=[{"role": "user", "content": "x"}]) as stream:
            for _ in stream.text_stream:
                pass


def test_truncated_native_stream_ends_with_error_event(gw):
    import httpx

    r = httpx.post(gw.url + "/v1/messages", headers={"x-api-key": MASTER},
                   json={"model": "claude-truncated", "max_tokens": 64, "stream": True,
                         "messages": [{"role": "user", "content": "x"}]})
    assert "event: error" in r.text and "message_stop" not in r.text
    assert "content_block_delta" in r.text, "the cut came after content was committed"


def test_truncated_before_content_is_a_plain_error(gw):
    """Nothing was committed: after the retries the client gets an HTTP error in Anthropic's shape."""
    with pytest.raises(anthropic.APIStatusError) as info:
        with ac(gw).messages.stream(model="claude-cut-early", max_tokens=64,
                                    messages=[{"role": "user", "content": "x"}]) as stream:
            list(stream.text_stream)
    assert info.value.status_code == 502 and "terminator" in info.value.message


def test_count_tokens(gw):
    result = ac(gw).messages.count_tokens(model="claude", messages=[{"role": "user", "content": "Hello there"}])
    assert result.input_tokens > 0


def test_native_stream_error_before_content_fails_over(start_gateway, mock_upstream):
    """An Anthropic stream that errors before any content is not committed: the next deployment answers."""
    def claude(model: str) -> dict:
        return {"model_name": "claude", "litellm_params": {"model": f"anthropic/{model}", "api_base": mock_upstream.url,
                                                           "api_key": "k"}}

    gw = start_gateway({"model_list": [claude("claude-sonnet-4-20250514@error_before_content"),
                                       claude("claude-sonnet-4-20250514")],
                        "router_settings": {"routing_strategy": "simple-shuffle", "num_retries": 2}}, key=MASTER)
    for _ in range(4):
        with ac(gw).messages.stream(model="claude", max_tokens=64,
                                    messages=[{"role": "user", "content": "x"}]) as stream:
            assert "".join(stream.text_stream)
