"""POST /utils/token_counter against tiktoken's count for the same text."""
from __future__ import annotations

import httpx

from fastgw.tokens import count_message_tokens


def test_token_counter(start_gateway):
    gw = start_gateway({"model_list": [
        {"model_name": "gpt", "litellm_params": {"model": "mock/gpt-4o"}},
        {"model_name": "claude", "litellm_params": {"model": "mock/claude-sonnet-4"}},
    ]}, key="sk-m")
    headers = {"authorization": "Bearer sk-m"}
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello, world! 你好"}]
    r = httpx.post(gw.url + "/utils/token_counter", json={"model": "gpt", "messages": messages}, headers=headers)
    assert r.status_code == 200
    body = r.json()
    assert body["exact"] is True and body["tokenizer_type"] == "o200k_base"
    assert body["total_tokens"] == count_message_tokens("gpt-4o", messages).tokens
    r = httpx.post(gw.url + "/utils/token_counter", json={"model": "claude", "prompt": "Hello"}, headers=headers)
    assert r.json()["exact"] is False and r.json()["tokenizer_type"].startswith("approximate")
    r = httpx.post(gw.url + "/utils/token_counter", json={"model": "gpt"}, headers=headers)
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    r = httpx.post(gw.url + "/utils/token_counter", json={"model": "gpt", "prompt": "x"})
    assert r.status_code == 401
