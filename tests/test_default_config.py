"""`fastgw serve` with no config: the embedded mock provider answers with no keys or network."""
from __future__ import annotations

import openai


def test_embedded_default_answers(start_gateway):
    gw = start_gateway(None)
    c = openai.OpenAI(base_url=gw.base_url, api_key="anything", max_retries=0)
    first = c.chat.completions.create(model="mock-gpt-fast", messages=[{"role": "user", "content": "hello"}])
    again = c.chat.completions.create(model="mock-gpt-fast", messages=[{"role": "user", "content": "hello"}])
    assert first.choices[0].message.content == again.choices[0].message.content, "deterministic"
    assert "hello" in first.choices[0].message.content
    chunks = list(c.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "hi"}],
                                            stream=True, stream_options={"include_usage": True}))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices).startswith("This is a mock")
    assert chunks[-1].usage.completion_tokens > 0
    emb = c.embeddings.create(model="mock-embed", input="hello")
    assert len(emb.data[0].embedding) == 16
    assert {m.id for m in c.models.list()} >= {"mock-gpt", "mock-embed"}
    assert (gw.workdir / "fastgw.db").exists(), "default database lives in the working directory"
