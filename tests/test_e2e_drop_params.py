"""Parameters a provider cannot honour: a 400 naming them, or dropped with drop_params."""
from __future__ import annotations

import json

import openai
import pytest


@pytest.fixture
def gw(start_gateway, mock_upstream):
    def claude(name: str, **extra: object) -> dict:
        return {"model_name": name, "litellm_params": {"model": "anthropic/claude-sonnet-4-20250514",
                                                       "api_base": mock_upstream.url, "api_key": "k", **extra}}

    return start_gateway({"model_list": [claude("strict"), claude("lenient", drop_params=True)]}, key="sk-m")


def test_unsupported_parameter_is_named(gw):
    client = openai.OpenAI(base_url=gw.base_url, api_key="sk-m", max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="strict", n=2, messages=[{"role": "user", "content": "x"}])
    assert info.value.param == "n" and "anthropic" in info.value.message
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="strict", logprobs=True, messages=[{"role": "user", "content": "x"}])
    assert info.value.param == "logprobs"


def test_drop_params_drops(gw, mock_upstream):
    client = openai.OpenAI(base_url=gw.base_url, api_key="sk-m", max_retries=0)
    mock_upstream.reset()
    resp = client.chat.completions.create(model="lenient", n=2, logprobs=True, seed=3,
                                          messages=[{"role": "user", "content": "x"}])
    assert resp.choices[0].message.content
    sent = json.loads(mock_upstream.requests()[-1]["body"])
    assert not {"n", "logprobs", "seed"} & set(sent)
