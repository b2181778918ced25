"""Per-request cost of governance on the request path: auth + admission + settle (not a test).

Runs the same calls the routes make, in-process, on a real shared-memory counter file:
``Authenticator.authenticate`` (hash + cache lookup), ``Governance.admit`` (model check,
token count, reservation, one locked read-modify-write of key/team/user counters) and
``Governance.settle`` (cost + one locked write). Prints microseconds per request.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_governance.py
"""
from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import yaml
from starlette.datastructures import Headers

from fastgw.auth import Authenticator
from fastgw.config import load_config
from fastgw.governance import Governance
from fastgw.governance import requests as rq
from fastgw.governance.manage import Manager
from fastgw.pipeline import Call

N = 20_000


def build(tmp: Path) -> Governance:
    cfg = {"model_list": [{"model_name": "gpt-4o-mini", "litellm_params": {"model": "openai/gpt-4o-mini",
                                                                          "api_key": "x"}}],
           "general_settings": {"master_key": "sk-master", "database_url": f"sqlite:///{tmp / 'db.sqlite'}"}}
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return Governance(load_config(path))


async def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        gov = build(tmp)
        from fastgw.usage import UsageLog
        log = UsageLog(str(tmp / "db.sqlite"))
        await log.start()
        await gov.start()
        manager = Manager(gov)
        await manager.new_team(rq.decode({"team_id": "t", "max_budget": 1e9, "rpm_limit": 10**9}, rq.TeamNew))
        key = (await manager.generate_key(rq.decode({"team_id": "t", "max_budget": 1e9, "rpm_limit": 10**9,
                                                     "tpm_limit": 10**12}, rq.KeyGenerate)))["key"]
        plain = (await manager.generate_key(rq.decode({}, rq.KeyGenerate)))["key"]
        auth = Authenticator("sk-master", gov.resolve)
        body = {"model": "gpt-4o-mini", "max_tokens": 100,
                "messages": [{"role": "system", "content": "You are a helpful assistant."},
                             {"role": "user", "content": "What is the capital of France? " * 5}]}
        for label, token in (("key with budget+rpm+tpm, team with budget+rpm", key), ("key without limits", plain),
                             ("master key", "sk-master")):
            headers = Headers({"authorization": f"Bearer {token}"})
            phases = {"auth": 0.0, "admit": 0.0, "settle": 0.0}
            for i in range(N):
                t0 = time.perf_counter()
                principal = auth.authenticate(headers)
                t1 = time.perf_counter()
                call = Call(endpoint="chat.completions", body=body, model_group="gpt-4o-mini", principal=principal,
                            request_id=f"r{i}")
                t2 = time.perf_counter()
                gov.admit(call)
                t3 = time.perf_counter()
                call.record.deployment_id = next(iter(gov.prices))
                call.record.prompt_tokens, call.record.completion_tokens = 60, 20
                gov.settle(call)
                t4 = time.perf_counter()
                phases["auth"] += t1 - t0
                phases["admit"] += t3 - t2
                phases["settle"] += t4 - t3
            total = sum(phases.values())
            print(f"{label:48s} total {total / N * 1e6:6.1f} us/request  "
                  + "  ".join(f"{k} {v / N * 1e6:5.1f}" for k, v in phases.items()))
        await gov.stop()
        await log.stop()


if __name__ == "__main__":
    asyncio.run(main())
