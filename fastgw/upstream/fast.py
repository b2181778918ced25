"""Upstream transports built on the compiled client (``fastgw._core.httpclient``).

``FastTransport`` is the compiled client with the gateway's errors (502
``connection_error``, 504 ``timeout``, same messages as the aiohttp transport).

``AutoTransport`` is what the gateway uses: each request goes to the compiled client
unless it needs aiohttp's generality (an HTTP(S) proxy from the environment, a scheme
other than http/https, credentials in the URL, a HEAD request). ``FASTGW_UPSTREAM_CLIENT``
forces one side for every request: ``aiohttp`` or ``fast`` (default ``auto``).
"""
from __future__ import annotations

import logging
import os
import urllib.request
from typing import Any

from .._core.httpclient import HTTPClient
from ..errors import GatewayError, upstream_timeout, upstream_unreachable
from ..providers.base import UpstreamRequest
from .client import HTTPTransport

log = logging.getLogger("fastgw.upstream")

CLIENT_ENV = "FASTGW_UPSTREAM_CLIENT"
MODES = ("auto", "fast", "aiohttp")

_STARTING = "gateway is starting up or shutting down"


def _unavailable() -> GatewayError:
    return GatewayError(503, _STARTING, "api_error", None, "unavailable")


def _invalid_url() -> GatewayError:
    return GatewayError(502, "deployment has an invalid api_base URL", "api_error", None, "config_error")


class FastTransport:
    """The compiled pooled keep-alive HTTP/1.1 client (http and https)."""

    def __init__(self, keepalive_timeout: float = 30.0, max_idle_per_host: int = 1024, ssl_context: Any = None) -> None:
        self._options = dict(keepalive_timeout=keepalive_timeout, max_idle_per_host=max_idle_per_host,
                             ssl_context=ssl_context)
        self.client: HTTPClient | None = None

    async def start(self) -> None:
        self.client = HTTPClient(timeout_error=upstream_timeout, connection_error=upstream_unreachable,
                                 **self._options)

    async def close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            await client.close()

    def supports(self, url: str) -> bool:
        client = self.client
        return client is not None and client.target(url) is not None

    async def send(self, request: UpstreamRequest, *, connect_timeout: float, read_timeout: float,
                   wait: str = "headers") -> Any:
        client = self.client
        if client is None:
            raise _unavailable()
        if client.target(request.url) is None:
            raise _invalid_url()
        return await client.send(request, connect_timeout=connect_timeout, read_timeout=read_timeout,
                                 wait=wait)


def _proxied_hosts() -> dict[str, str] | None:
    """The proxies the environment configures (HTTP(S)_PROXY), or None."""
    proxies = {k: v for k, v in urllib.request.getproxies().items() if k in ("http", "https", "all")}
    return proxies or None


class AutoTransport:
    """Per request: the compiled client when it can serve the URL, aiohttp otherwise."""

    def __init__(self, mode: str | None = None) -> None:
        mode = (mode or os.environ.get(CLIENT_ENV) or "auto").strip().lower()
        if mode not in MODES:
            log.warning("%s=%r is not one of %s; using auto", CLIENT_ENV, mode, ", ".join(MODES))
            mode = "auto"
        self.mode = mode
        self.fast = FastTransport()
        self._proxies = _proxied_hosts()
        # With a proxy configured, aiohttp honours HTTP(S)_PROXY / NO_PROXY (trust_env) for the
        # URLs it gets. trust_env costs a thread-pool hop per request (netrc lookup), so it is
        # off otherwise, and in the forced "aiohttp" mode (the transport as it always was).
        self.general = HTTPTransport(trust_env=bool(self._proxies) and mode == "auto")
        self._choice: dict[str, bool] = {}  # url -> use the compiled client
        self._general_started = False

    async def start(self) -> None:
        if self.mode != "aiohttp":
            await self.fast.start()
        if self.mode == "aiohttp":
            await self._start_general()

    async def _start_general(self) -> None:
        if not self._general_started:
            self._general_started = True
            await self.general.start()

    async def close(self) -> None:
        await self.fast.close()
        if self._general_started:
            await self.general.close()
            self._general_started = False

    def _use_fast(self, url: str) -> bool:
        choice = self._choice.get(url)
        if choice is None:
            choice = self.mode != "aiohttp" and self.fast.supports(url)
            if choice and self.mode == "auto" and self._proxies:
                host = url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
                choice = bool(urllib.request.proxy_bypass(host.split(":", 1)[0]))
            if len(self._choice) > 4096:
                self._choice.clear()
            self._choice[url] = choice
        return choice

    async def send(self, request: UpstreamRequest, *, connect_timeout: float, read_timeout: float,
                   wait: str = "headers") -> Any:
        if request.method != "HEAD" and self._use_fast(request.url):
            client = self.fast.client
            if client is None:
                raise _unavailable()
            return await client.send(request, connect_timeout=connect_timeout, read_timeout=read_timeout,
                                     wait=wait)
        if not self._general_started:
            await self._start_general()
        return await self.general.send(request, connect_timeout=connect_timeout, read_timeout=read_timeout)
