"""Model groups: the names clients ask for, each backed by one or more deployments."""
from __future__ import annotations

import time

from .config.schema import Deployment
from .errors import GatewayError


class ModelRegistry:
    def __init__(self, deployments: list[Deployment]) -> None:
        self.deployments = deployments
        self.groups: dict[str, list[Deployment]] = {}
        for dep in deployments:
            self.groups.setdefault(dep.model_name, []).append(dep)
        self.created = int(time.time())

    def group(self, name: object) -> list[Deployment]:
        deployments = self.groups.get(name) if isinstance(name, str) else None
        if not deployments:
            raise GatewayError(404, f"The model '{name}' does not exist or you do not have access to it.",
                               "invalid_request_error", "model", "model_not_found")
        return deployments

    def model_object(self, name: str) -> dict:
        return {"id": name, "object": "model", "created": self.created, "owned_by": "fastgw"}

    def list_models(self, names: list[str] | None = None) -> dict:
        names = list(self.groups) if names is None else names
        return {"object": "list", "data": [self.model_object(name) for name in names]}
