"""Pooled keep-alive HTTP client for upstream calls.

One aiohttp session (one connector) per gateway process: connections are pooled per
host and reused across requests. Errors become GatewayErrors the router understands
(502 connection_error, 504 timeout), never raw exceptions.
"""
from __future__ import annotations

import asyncio
from typing import AsyncIterator, Mapping

import aiohttp
import yarl

from ..errors import GatewayError, upstream_timeout, upstream_unreachable
from ..providers.base import UpstreamRequest

_READ_SIZE = 65536


def _host_of(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]


class AiohttpResponse:
    __slots__ = ("_response", "status", "headers", "_host")

    def __init__(self, response: aiohttp.ClientResponse, host: str) -> None:
        self._response = response
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers
        self._host = host

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except asyncio.TimeoutError:
            raise upstream_timeout(f"upstream {self._host} timed out sending the response") from None
        except aiohttp.ClientError as exc:
            raise upstream_unreachable(f"upstream {self._host} failed while sending the response ({type(exc).__name__})") from None
        finally:
            self._response.release()

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        content = self._response.content
        try:
            while True:
                data = await content.readany()
                if not data:
                    return
                yield data
        except asyncio.TimeoutError:
            raise upstream_timeout(f"upstream {self._host} stopped sending (read timeout)") from None
        except aiohttp.ClientError as exc:
            raise upstream_unreachable(f"upstream {self._host} connection broke mid-stream ({type(exc).__name__})") from None

    def close(self) -> None:
        if not self._response.closed:
            # A partly read body cannot be reused: close drops the connection.
            self._response.close()


class HTTPTransport:
    """The network transport; created on start-up inside the running loop."""

    def __init__(self, limit_per_host: int = 0, keepalive_timeout: float = 30.0, trust_env: bool = False) -> None:
        self._limit_per_host = limit_per_host
        self._keepalive_timeout = keepalive_timeout
        self._trust_env = trust_env  # True: honour HTTP(S)_PROXY / NO_PROXY from the environment
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=0, limit_per_host=self._limit_per_host, keepalive_timeout=self._keepalive_timeout,
            ttl_dns_cache=300, enable_cleanup_closed=True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector, auto_decompress=True, skip_auto_headers=("User-Agent",),
            read_bufsize=_READ_SIZE, trust_env=self._trust_env,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, request: UpstreamRequest, *, connect_timeout: float, read_timeout: float,
                   wait: str = "headers") -> AiohttpResponse:
        if self._session is None:
            raise GatewayError(503, "gateway is starting up or shutting down", "api_error", None, "unavailable")
        host = _host_of(request.url)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=read_timeout)
        try:
            # Providers build URLs already percent-encoded (SigV4 signs the encoded path), so
            # yarl must not normalise them (it would turn %3A back into ':').
            response = await self._session.request(
                request.method, yarl.URL(request.url, encoded=True), data=request.body, headers=request.headers, timeout=timeout,
                allow_redirects=False,
            )
        except asyncio.TimeoutError:
            raise upstream_timeout(f"upstream {host} did not answer in time") from None
        except aiohttp.InvalidURL:
            raise GatewayError(502, "deployment has an invalid api_base URL", "api_error", None, "config_error") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise upstream_unreachable(f"cannot reach upstream {host} ({type(exc).__name__})") from None
        return AiohttpResponse(response, host)
