"""GCRA: a limit of N per minute admits a burst of N, then one every 60/N seconds."""
from __future__ import annotations

from fastgw.governance.ratelimit import gcra, remaining_after, retry_after_header


def test_burst_then_refill():
    tat, now, passed = 0.0, 1000.0, 0
    remaining = []
    for _ in range(100):
        result = gcra(tat, now, 1, 20)
        if result.allowed:
            tat = result.tat
            passed += 1
            remaining.append(result.remaining)
    assert passed == 20
    assert remaining[0] == 19 and remaining[-1] == 0
    refused = gcra(tat, now, 1, 20)
    assert not refused.allowed and abs(refused.retry_after - 3.0) < 1e-6
    assert gcra(tat, now + 2.9, 1, 20).allowed is False
    assert gcra(tat, now + 3.0, 1, 20).allowed is True
    assert remaining_after(tat, now + 60, 20) == 20


def test_token_cost():
    result = gcra(0.0, 0.0, 600, 1000)
    assert result.allowed and result.remaining == 400
    second = gcra(result.tat, 0.0, 500, 1000)
    assert not second.allowed and second.remaining == 400 and abs(second.retry_after - 6.0) < 1e-6
    assert gcra(0.0, 0.0, 1001, 1000).impossible


def test_retry_after_header_rounds_up():
    assert retry_after_header(0.01) == "1" and retry_after_header(2.1) == "3" and retry_after_header(0) == "1"
