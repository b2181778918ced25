"""The gateway's state for one process, built once at start-up and passed explicitly.

Routes reach it through ``request.app.state.gateway``; nothing else is global.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .auth import Authenticator
from .config import LoadedConfig
from .models import ModelRegistry
from .providers import create_provider
from .providers.base import Provider, Transport
from .upstream import HTTPTransport
from .usage import UsageLog

log = logging.getLogger("fastgw")

DEFAULT_TIMEOUT = 600.0
CONNECT_TIMEOUT = 10.0


@dataclass
class Gateway:
    loaded: LoadedConfig
    models: ModelRegistry
    providers: dict[str, Provider]
    auth: Authenticator
    transport: HTTPTransport
    usage_log: UsageLog
    max_body_bytes: int
    started: bool = field(default=False)

    @classmethod
    def from_config(cls, loaded: LoadedConfig) -> "Gateway":
        settings = loaded.config.general_settings
        deployments = loaded.deployments
        return cls(
            loaded=loaded,
            models=ModelRegistry(deployments),
            providers={name: create_provider(name) for name in {d.provider for d in deployments}},
            auth=Authenticator(settings.master_key),
            transport=HTTPTransport(),
            usage_log=UsageLog(loaded.database_path, settings.usage_log_queue_size, settings.usage_log_batch_size,
                               settings.usage_log_flush_interval),
            max_body_bytes=int(settings.max_request_size_mb * 1024 * 1024),
        )

    def transport_for(self, provider: Provider) -> Transport:
        return provider.local_transport or self.transport

    async def start(self) -> None:
        await self.transport.start()
        await self.usage_log.start()
        self.started = True

    async def stop(self) -> None:
        self.started = False
        await self.usage_log.stop()
        await self.transport.close()
