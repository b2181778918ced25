"""The usage writer's priority switches (fastgw/usage/priority.py)."""
from __future__ import annotations

import os
import sys
import threading

import pytest

from fastgw.usage.priority import WRITER_NICE, WriterPriority


class Recorder:
    def __init__(self, refuse_idle: bool = False) -> None:
        self.calls: list[str] = []
        self.refuse_idle = refuse_idle

    def idle(self, tid: int) -> None:
        assert tid == threading.get_native_id()
        if self.refuse_idle:
            raise PermissionError("not permitted")
        self.calls.append("idle")

    def normal(self, tid: int, nice: int) -> None:
        self.calls.append(f"nice {nice}")


def make(rec: Recorder, can_leave_idle: bool = True) -> WriterPriority:
    return WriterPriority(high=100, low=10, can_leave_idle=can_leave_idle, set_idle=rec.idle, set_normal=rec.normal)


def started_idle(rec: Recorder) -> WriterPriority:
    """A started writer, idle-only, with the calls its start made forgotten."""
    p = make(rec)
    p.start()
    assert p.idle
    rec.calls.clear()
    return p


def test_idle_only_while_keeping_up_niced_when_behind():
    rec = Recorder()
    p = make(rec)
    p.start()
    assert p.idle and rec.calls == [f"nice {WRITER_NICE}", "idle"]
    p.adjust(100, 0.2)  # at the threshold: stays
    p.adjust(101, 0.2)
    assert not p.idle and p.switches == 1
    p.adjust(50, p.caught_up_lag + 0.1)  # between the thresholds, flushes not keeping pace: stays niced
    assert not p.idle
    p.adjust(9, p.caught_up_lag + 0.1)
    assert p.idle
    assert rec.calls == [f"nice {WRITER_NICE}", "idle", f"nice {WRITER_NICE}", "idle"]


def test_back_to_idle_once_flushes_keep_pace_even_above_the_low_mark():
    """At c=1 and 2,500 requests/s every cycle finds one interval's rows (500) queued: a
    backlog test alone kept the writer niced for seconds, and niced it shares the core."""
    rec = Recorder()
    p = WriterPriority(high=5000, low=500, flush_interval=0.2, can_leave_idle=True, set_idle=rec.idle,
                       set_normal=rec.normal)
    p.start()
    p.adjust(5001, 0.3)
    assert not p.idle
    p.adjust(600, 0.9)  # the niced flush is still catching up
    assert not p.idle
    p.adjust(600, 0.25)  # the last flush wrote everything and began one interval ago
    assert p.idle and p.switches == 1
    assert p.caught_up_lag == pytest.approx(0.5)


def test_rows_waiting_too_long_count_as_behind():
    rec = Recorder()
    p = make(rec)
    p.start()
    p.adjust(0, 30.0)  # nothing waiting: an old last flush does not matter
    assert p.idle
    p.adjust(3, p.max_lag + 0.1)  # few rows, but no complete flush for too long (starved)
    assert not p.idle and p.switches == 1
    p.adjust(3, p.max_lag + 0.1)
    assert not p.idle  # still behind: stays niced
    p.adjust(3, 0.2)
    assert p.idle


def test_never_idle_when_it_could_not_leave_it():
    rec = Recorder()
    p = make(rec, can_leave_idle=False)
    p.start()
    p.adjust(0, 0.2)
    p.adjust(1000, 0.2)
    p.adjust(0, 0.2)
    assert not p.idle and "idle" not in rec.calls


def test_a_refused_idle_switch_is_not_retried():
    rec = Recorder(refuse_idle=True)
    p = make(rec)
    p.start()
    assert not p.idle and not p.can_idle
    p.adjust(0, 0.2)
    assert rec.calls == [f"nice {WRITER_NICE}"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priorities are Linux-only")
def test_real_switches_apply_to_the_calling_thread_only():
    seen: list[tuple[int, int]] = []

    def writer() -> None:
        p = WriterPriority(high=100, low=10)
        tid = threading.get_native_id()
        p.start()
        seen.append((os.sched_getscheduler(tid), os.getpriority(os.PRIO_PROCESS, tid)))
        p.adjust(1000, 0.2)
        seen.append((os.sched_getscheduler(tid), os.getpriority(os.PRIO_PROCESS, tid)))
        p.adjust(0, 0.2)
        seen.append((os.sched_getscheduler(tid), os.getpriority(os.PRIO_PROCESS, tid)))
        seen.append((int(p.can_idle), 0))

    thread = threading.Thread(target=writer)
    thread.start()
    thread.join()
    can_idle = seen.pop()[0]
    idle = os.SCHED_IDLE if can_idle else os.SCHED_OTHER
    assert seen == [(idle, WRITER_NICE), (os.SCHED_OTHER, WRITER_NICE), (idle, WRITER_NICE)]
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priorities are Linux-only")
def test_another_thread_can_lift_the_writer():
    started, checked = threading.Event(), threading.Event()
    p = WriterPriority(high=100, low=10)

    def writer() -> None:
        p.start()
        started.set()
        checked.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    started.wait(10)
    before = os.sched_getscheduler(p.tid)
    p.behind()  # from this thread, as UsageLog.record does on the event loop
    after = os.sched_getscheduler(p.tid), os.getpriority(os.PRIO_PROCESS, p.tid)
    checked.set()
    thread.join()
    assert before == (os.SCHED_IDLE if p.can_idle else os.SCHED_OTHER)
    assert after == (os.SCHED_OTHER, WRITER_NICE) and not p.idle


def test_niced_while_holding_the_write_lock_then_idle_only_again():
    rec = Recorder()
    p = started_idle(rec)
    with p.holding_lock():
        assert rec.calls == [f"nice {WRITER_NICE}"], "an idle-only writer must not hold the lock unscheduled"
        assert p.idle, "it still counts as keeping pace (short time slices)"
    assert rec.calls == [f"nice {WRITER_NICE}", "idle"] and p.idle


def test_a_writer_fallen_behind_during_the_lock_stays_niced():
    rec = Recorder()
    p = started_idle(rec)
    with p.holding_lock():
        p.behind()  # the event loop saw the backlog pass the high mark
    assert not p.idle and "idle" not in rec.calls
    rec.calls.clear()
    with p.holding_lock():  # already niced: nothing to lift or restore
        pass
    assert rec.calls == []


def test_an_error_inside_the_lock_still_restores_idle_only():
    rec = Recorder()
    p = started_idle(rec)
    with pytest.raises(RuntimeError):
        with p.holding_lock():
            raise RuntimeError("database is locked")
    assert p.idle and rec.calls[-1] == "idle"
