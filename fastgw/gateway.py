"""The gateway's state for one process, built once at start-up and passed explicitly.

Routes reach it through ``request.app.state.gateway``; nothing else is global.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import msgspec

from .auth import Authenticator
from .cache import ResponseCache
from .config import LoadedConfig
from .governance import Governance
from .models import ModelRegistry
from .observability.metrics import GatewayMetrics
from .observability.observer import Observer
from .observability.settings import parse_observability_settings
from .providers import create_provider
from .providers.base import Provider, Transport
from .router.health import HealthChecker
from .router.router import Router
from .router.settings import parse_router_settings
from .upstream import AutoTransport
from .usage import UsageLog
from .usage.retention import Pruner, parse_retention_settings

log = logging.getLogger("fastgw")

DEFAULT_TIMEOUT = 600.0
CONNECT_TIMEOUT = 10.0


@dataclass
class Gateway:
    loaded: LoadedConfig
    models: ModelRegistry
    providers: dict[str, Provider]
    auth: Authenticator
    transport: AutoTransport
    usage_log: UsageLog
    max_body_bytes: int
    router: Router
    metrics: GatewayMetrics  # this gateway's own Prometheus registry (fastgw/observability/metrics.py)
    cache: ResponseCache
    observer: Observer  # gets every finished call: metrics, access log, traces, webhook
    governance: Governance  # virtual keys, budgets, rate limits, cost (fastgw/governance/)
    retention: Pruner  # deletes usage rows older than the retention period, if one is set
    started: bool = field(default=False)
    health_checker: HealthChecker | None = field(default=None)

    @classmethod
    def from_config(cls, loaded: LoadedConfig) -> "Gateway":
        settings = loaded.config.general_settings
        deployments = loaded.deployments
        usage_log = UsageLog(loaded.database_path, settings.usage_log_queue_size, settings.usage_log_batch_size,
                             settings.usage_log_flush_interval)
        metrics = GatewayMetrics()
        governance = Governance(loaded)
        usage_log.pricer = governance.price_record  # every usage row carries its cost (or "unpriced")
        return cls(
            loaded=loaded,
            models=ModelRegistry(deployments),
            providers={name: create_provider(name) for name in {d.provider for d in deployments}},
            auth=Authenticator(settings.master_key, governance.resolve if governance.enabled else None),
            transport=AutoTransport(),  # compiled client; aiohttp for proxies/other URLs
            usage_log=usage_log,
            max_body_bytes=int(settings.max_request_size_mb * 1024 * 1024),
            router=Router(deployments, parse_router_settings(
                loaded.config.router_settings, loaded.config.litellm_settings, msgspec.structs.asdict(settings),
                {d.model_name for d in deployments}), events=metrics),
            metrics=metrics,
            cache=ResponseCache.from_litellm_settings(loaded.config.litellm_settings, metrics),
            observer=Observer.from_settings(parse_observability_settings(loaded.config, os.environ), metrics, usage_log),
            governance=governance,
            retention=Pruner(parse_retention_settings(msgspec.structs.asdict(settings)), usage_log,
                             governance.earliest_budget_window),
        )

    def transport_for(self, provider: Provider) -> Transport:
        return provider.local_transport or self.transport

    async def start(self) -> None:
        await self.transport.start()
        await self.usage_log.start()
        await self.governance.start()  # after the usage log: its tables hold the spend to rebuild
        self.retention.start()  # after governance: it keeps the minutes of every open budget window
        await self.observer.start()
        if self.router.settings.background_health_checks:
            self.health_checker = HealthChecker(self)
            self.health_checker.start()
        self.started = True

    async def stop(self) -> None:
        self.started = False
        if self.health_checker is not None:
            await self.health_checker.stop()
        await self.retention.stop()
        await self.usage_log.stop()
        await self.governance.stop()
        await self.cache.close()
        await self.observer.stop()
        await self.transport.close()
