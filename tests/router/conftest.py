"""Router unit-test helpers: deployments built in memory, a clock the test moves."""
from __future__ import annotations

import random
from typing import Callable

import pytest

from fastgw.config.schema import Deployment, LitellmParams, ModelInfo
from fastgw.router.router import Router
from fastgw.router.settings import RouterSettings


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def deployment(dep_id: str, group: str = "g", *, input_cost: float | None = None, output_cost: float | None = None,
               **params: object) -> Deployment:
    return Deployment(id=dep_id, model_name=group, provider="openai", model=f"model-{dep_id}",
                      params=LitellmParams(model=f"openai/model-{dep_id}", api_key=f"sk-secret-{dep_id}", **params),
                      info=ModelInfo(input_cost_per_token=input_cost, output_cost_per_token=output_cost), extra={})


RouterFactory = Callable[..., Router]


@pytest.fixture
def dep() -> Callable[..., Deployment]:
    return deployment


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_router(clock: FakeClock) -> RouterFactory:
    def make(deployments: list[Deployment], seed: int = 7, **settings: object) -> Router:
        return Router(deployments, RouterSettings(**settings), clock=clock, rng=random.Random(seed))
    return make
