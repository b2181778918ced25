"""A timeline of one request's upstream attempts (for trace spans and error metrics).

The pipeline opens an attempt just before each upstream send and fails it if the send
fails; the attempt still open when the request finishes is closed with the request's
outcome. Times are wall-clock nanoseconds, as OpenTelemetry wants them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from ..errors import GatewayError


@dataclass(slots=True)
class UpstreamAttempt:
    deployment_id: str
    provider: str
    model: str  # the provider's model id
    start_ns: int
    end_ns: int | None = None
    error_type: str | None = None
    status: int | None = None

    def fail(self, exc: BaseException) -> None:
        if self.end_ns is not None:
            return
        self.end_ns = time.time_ns()
        if isinstance(exc, GatewayError):
            self.error_type = exc.code or exc.type
            self.status = exc.status
        else:
            self.error_type = type(exc).__name__

    def close(self, status: int, error_type: str | None) -> None:
        if self.end_ns is not None:
            return
        self.end_ns = time.time_ns()
        self.status = status
        self.error_type = error_type


def begin_attempt(attempts: list[UpstreamAttempt], deployment_id: str, provider: str, model: str) -> UpstreamAttempt:
    attempt = UpstreamAttempt(deployment_id, provider, model, time.time_ns())
    attempts.append(attempt)
    return attempt


def close_open_attempts(attempts: list[UpstreamAttempt], status: int, error_type: str | None) -> None:
    for attempt in attempts:
        attempt.close(status, error_type)
