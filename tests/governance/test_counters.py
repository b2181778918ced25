"""The shared-memory counter store: all-or-nothing admission, settle, windows, two workers, the feed."""
from __future__ import annotations

import pytest

from fastgw.governance.counters import ScopeLimits, SharedMemoryCounterStore
from fastgw.durations import parse_duration
from fastgw.governance.journal import JournalLost


def open_store(path, instance="run-1", slots=64, journal=4096) -> SharedMemoryCounterStore:
    store = SharedMemoryCounterStore(str(path), instance, slots, journal)
    with store.locked():
        store.claim()
    return store


@pytest.fixture
def path(tmp_path):
    return tmp_path / "counters"


def test_budget_reserve_then_settle(path):
    store = open_store(path)
    key = ScopeLimits("key", "k", max_budget=1.0)
    first = store.admit([key], 0.4, 0, 100.0)
    second = store.admit([key], 0.4, 0, 100.0)
    assert first.ticket and second.ticket
    third = store.admit([key], 0.4, 0, 100.0)
    assert third.refusal and third.refusal.reason == "budget" and third.refusal.reserved == pytest.approx(0.8)
    store.settle(first.ticket, 0.1, 0, 101.0)  # the reservation becomes the actual cost
    store.settle(first.ticket, 0.1, 0, 101.0)  # settling twice changes nothing
    state = store.state(key, 101.0)
    assert state.spend == pytest.approx(0.1) and state.reserved == pytest.approx(0.4) and state.in_flight == 1
    assert store.admit([key], 0.4, 0, 101.0).ticket is not None


def test_all_levels_or_none(path):
    store = open_store(path)
    key = ScopeLimits("key", "k", rpm=100)
    team = ScopeLimits("team", "t", max_parallel=1)
    assert store.admit([key, team], 0.0, 0, 0.0).ticket is not None
    refused = store.admit([key, team], 0.0, 0, 0.0)
    assert refused.refusal.reason == "parallel" and refused.refusal.scope.kind == "team"
    assert store.state(key, 0.0).in_flight == 1, "the key was not charged for the refused request"


def test_window_resets(path):
    store = open_store(path)
    key = ScopeLimits("key", "k", max_budget=1.0, duration=parse_duration("1h"))
    ticket = store.admit([key], 1.0, 0, 3600.0 * 10 + 5).ticket
    store.settle(ticket, 1.0, 0, 3600.0 * 10 + 6)
    assert store.admit([key], 0.1, 0, 3600.0 * 10 + 7).refusal.reason == "budget"
    assert store.admit([key], 0.1, 0, 3600.0 * 11).ticket is not None, "a new hour, a new budget"


def test_rpm_and_tpm(path):
    store = open_store(path)
    key = ScopeLimits("key", "k", rpm=3, tpm=100)
    decisions = [store.admit([key], 0.0, 10, 0.0) for _ in range(5)]
    assert [d.ticket is not None for d in decisions] == [True, True, True, False, False]
    assert decisions[0].rate.limit_requests == 3 and decisions[0].rate.remaining_requests == 2
    assert decisions[2].rate.remaining_tokens == 70
    assert decisions[3].refusal.reason == "rpm" and decisions[3].refusal.retry_after == pytest.approx(20.0)
    store.settle(decisions[0].ticket, 0.0, 60, 1.0)  # the request really used 60 tokens
    assert store.remaining(key, 1.0)[1] == pytest.approx(20, abs=2)


def test_two_workers_share_one_file(path):
    a = open_store(path)
    b = open_store(path)  # same instance: joins, does not reset
    key = ScopeLimits("key", "k", rpm=4)
    passed = sum(1 for store in (a, b) * 5 if store.admit([key], 0.0, 0, 0.0).ticket is not None)
    assert passed == 4


def test_new_instance_starts_afresh(path):
    a = open_store(path)
    key = ScopeLimits("key", "k", max_parallel=1)
    assert a.admit([key], 0.0, 0, 0.0).ticket
    b = open_store(path, instance="run-2")
    assert b.fresh and b.state(key, 0.0).in_flight == 0


def test_feed_reaches_every_reader_and_detects_loss(path):
    a = open_store(path, journal=256)
    b = open_store(path, journal=256)
    cursor = b.cursor()
    a.publish(b"one")
    a.publish(b"two" * 10)
    payloads, cursor = b.changes_since(cursor)
    assert payloads == [b"one", b"two" * 10]
    assert b.changes_since(cursor) == ([], cursor)
    for i in range(40):  # wraps the ring several times
        a.publish(f"change-{i}".encode())
        got, cursor = b.changes_since(cursor)
        assert got == [f"change-{i}".encode()]
    for i in range(40):
        a.publish(b"x" * 40)
    with pytest.raises(JournalLost):
        b.changes_since(cursor)
