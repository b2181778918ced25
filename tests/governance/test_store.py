"""The governance store's own file handling: opened from the event loop, shared with other
processes starting at the same moment, rebuilt after the file is deleted."""
from __future__ import annotations

import asyncio
import multiprocessing
import os
from pathlib import Path

from fastgw.governance.entities import KeyEntry
from fastgw.governance.store import GovernanceStore


def key(n: int) -> KeyEntry:
    return KeyEntry(token=f"{n:064x}", key_name=f"sk-...{n:04d}", key_alias=f"alias-{n}")


async def test_put_and_load_back(tmp_path: Path):
    store = GovernanceStore(str(tmp_path / "db" / "usage.db"))
    await store.connect()
    await store.put("key", key(1))
    keys, teams, users = await store.load_all()
    assert [k.key_alias for k in keys] == ["alias-1"] and teams == [] and users == []
    await store.close()


async def test_deleted_file_is_recreated_on_next_use(tmp_path: Path):
    path = tmp_path / "usage.db"
    store = GovernanceStore(str(path))
    await store.connect()
    await store.put("key", key(1))
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.unlink(f"{path}{suffix}")
    await store.put("key", key(2))
    keys, _, _ = await store.load_all()
    assert [k.key_alias for k in keys] == ["alias-2"]
    await store.close()


def _connect_and_put(path: str, n: int, barrier, results) -> None:
    async def main() -> None:
        store = GovernanceStore(path)
        await store.connect()
        await store.put("key", key(n))
        await store.close()

    barrier.wait()
    try:
        asyncio.run(main())
        results.put("ok")
    except Exception as exc:  # reported to the test
        results.put(f"{type(exc).__name__}: {exc}")


def test_workers_connecting_together_to_a_fresh_file(tmp_path: Path):
    ctx = multiprocessing.get_context("fork")
    for round_ in range(4):
        path = str(tmp_path / f"r{round_}.db")
        barrier, results = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_connect_and_put, args=(path, n, barrier, results)) for n in range(4)]
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(10)
        assert outcomes == ["ok"] * 4, outcomes

        async def count() -> int:
            store = GovernanceStore(path)
            await store.connect()
            keys, _, _ = await store.load_all()
            await store.close()
            return len(keys)

        assert asyncio.run(count()) == 4
