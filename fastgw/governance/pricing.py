"""Prices per token and the cost of one request from its normalised usage.

The table (``fastgw/data/prices.json``) is per 1M tokens for readability; ``Price`` is
per token. A deployment's price is the table entry for its provider and model with any
``model_info`` cost fields laid over it; a deployment with neither is *unpriced*, which
is reported as such and never as $0.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from typing import Any

from ..config.schema import Deployment

PER_MILLION = 1_000_000.0
_REGION_PREFIX = re.compile(r"^(us|eu|apac|jp|au|ca|global|us-gov)\.")
_BOUNDARY = frozenset("-@:/.")
# What follows a listed name when the id is a newer model of its family, not a snapshot of it:
# a minor version ("claude-opus-4" + "-7", "gpt-5" + ".6-terra"). Snapshots are dated
# ("-20250514", "-2024-08-06", "-0613", "-08-2024") or named ("-audio-preview").
_MINOR_VERSION = re.compile(r"(?:\.\d|-\d{1,2}(?:$|-(?!\d{4}(?:$|-))))")


@dataclass(frozen=True, slots=True)
class Tier:
    """Prices that apply to a whole request once its prompt passes ``threshold`` tokens."""

    threshold: int
    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None


@dataclass(frozen=True, slots=True)
class Price:
    input: float  # USD per uncached prompt token
    output: float  # USD per completion token (reasoning included unless ``reasoning`` is set)
    cache_read: float | None = None  # per cached prompt token (None: the input price)
    cache_write: float | None = None  # per prompt token written to the cache (None: the input price)
    reasoning: float | None = None  # per reasoning token, where a provider prices it apart
    max_output_tokens: int | None = None
    long_context: Tier | None = None
    source: str = "table"  # table | model_info | table+model_info
    last_checked: str | None = None

    def for_prompt(self, prompt_tokens: int) -> "Price":
        tier = self.long_context
        if tier is None or prompt_tokens <= tier.threshold:
            return self
        return replace(self, input=tier.input, output=tier.output,
                       cache_read=tier.cache_read if tier.cache_read is not None else self.cache_read,
                       cache_write=tier.cache_write if tier.cache_write is not None else self.cache_write,
                       long_context=None)


@dataclass(frozen=True, slots=True)
class Usage:
    """Normalised usage: prompt includes cached and cache-creation tokens, completion includes reasoning."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Cost:
    total: float
    input_cost: float
    output_cost: float
    cache_read_cost: float
    cache_creation_cost: float


def cost_of(price: Price, usage: Usage) -> Cost:
    """Each token is priced once: uncached prompt, cache reads, cache writes, completion (reasoning)."""
    p = price.for_prompt(usage.prompt_tokens)
    cached = max(0, usage.cached_tokens)
    created = max(0, usage.cache_creation_tokens)
    uncached = max(0, usage.prompt_tokens - cached - created)
    input_cost = uncached * p.input
    cache_read_cost = cached * (p.cache_read if p.cache_read is not None else p.input)
    cache_creation_cost = created * (p.cache_write if p.cache_write is not None else p.input)
    if p.reasoning is not None:
        reasoning = min(max(0, usage.reasoning_tokens), max(0, usage.completion_tokens))
        output_cost = (usage.completion_tokens - reasoning) * p.output + reasoning * p.reasoning
    else:
        output_cost = max(0, usage.completion_tokens) * p.output
    total = input_cost + cache_read_cost + cache_creation_cost + output_cost
    return Cost(total, input_cost, output_cost, cache_read_cost, cache_creation_cost)


def worst_case_cost(price: Price, prompt_tokens: int, max_output_tokens: int) -> float:
    """The most a request can cost: every prompt token at the dearest prompt rate, every output
    token allowed at the dearest output rate (long-context prices if the prompt reaches them)."""
    p = price.for_prompt(prompt_tokens)
    prompt_rate = max(p.input, p.cache_write or 0.0, p.cache_read or 0.0)
    output_rate = max(p.output, p.reasoning or 0.0)
    return prompt_tokens * prompt_rate + max_output_tokens * output_rate


def format_cost(cost: float) -> str:
    """Fixed-point dollars without trailing zeros (``0.000123``), never scientific notation."""
    text = f"{cost:.12f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


# --------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------


def _per_token(value: Any) -> float | None:
    return None if value is None else float(value) / PER_MILLION


def _price_from_row(row: dict, last_checked: str | None) -> Price:
    tier = row.get("long_context")
    return Price(
        input=float(row["input"]) / PER_MILLION,
        output=float(row.get("output", 0.0)) / PER_MILLION,
        cache_read=_per_token(row.get("cache_read")),
        cache_write=_per_token(row.get("cache_write")),
        reasoning=_per_token(row.get("reasoning")),
        max_output_tokens=row.get("max_output_tokens"),
        long_context=Tier(int(tier["threshold"]), float(tier["input"]) / PER_MILLION,
                          float(tier["output"]) / PER_MILLION, _per_token(tier.get("cache_read")),
                          _per_token(tier.get("cache_write"))) if tier else None,
        last_checked=row.get("last_checked") or last_checked,
    )


class PriceTable:
    """Lookup by provider and model id: exact name first, then the longest listed name the id
    starts with at a boundary ("gpt-4o-mini-2024-07-18" -> "gpt-4o-mini"; never "gpt-4" for "gpt-4o"),
    unless the rest is a minor version: "claude-opus-4-7" is not "claude-opus-4" at a third of
    the price, it is unpriced until the table lists it (an explicit "unpriced", not a wrong cost)."""

    def __init__(self, data: dict) -> None:
        self._models: dict[str, dict[str, Price]] = {}
        for provider, block in data.get("providers", {}).items():
            checked = block.get("last_checked")
            self._models[provider] = {name.lower(): _price_from_row(row, checked)
                                      for name, row in block.get("models", {}).items()}
        self._aliases: dict[str, list[str]] = data.get("aliases", {})
        self._vendors: dict[str, str] = data.get("openrouter_vendors", {})

    @classmethod
    def load(cls) -> "PriceTable":
        return _bundled_table()

    def providers(self) -> list[str]:
        return sorted(self._models)

    def lookup(self, provider: str, model: str) -> Price | None:
        name = model.strip().lower()
        if provider == "openrouter" or "openrouter-vendor" in self._aliases.get(provider, ()):
            vendor, _, rest = name.partition("/")
            target = self._vendors.get(vendor)
            if not target or not rest:
                return None
            return self._find(target, rest) or self._find(target, rest.replace(".", "-"))
        if provider in ("bedrock", "bedrock_converse"):
            name = _REGION_PREFIX.sub("", name.rsplit("/", 1)[-1])
        for table in (provider, *self._aliases.get(provider, ())):
            found = self._find(table, name)
            if found is None and table == "bedrock":
                found = self._find(table, name.split(":", 1)[0])
            if found is not None:
                return found
        return None

    def _find(self, table: str, name: str) -> Price | None:
        models = self._models.get(table)
        if not models:
            return None
        exact = models.get(name)
        if exact is not None:
            return exact
        best: str | None = None
        for listed in models:
            if len(name) > len(listed) and name.startswith(listed) and name[len(listed)] in _BOUNDARY \
                    and not _MINOR_VERSION.match(name, len(listed)):
                if best is None or len(listed) > len(best):
                    best = listed
        return models[best] if best else None


@lru_cache(maxsize=1)
def _bundled_table() -> PriceTable:
    text = resources.files("fastgw").joinpath("data", "prices.json").read_text()
    return PriceTable(json.loads(text))


DEFAULT_MAX_OUTPUT_TOKENS = 4096  # reservation fallback when neither the table nor model_info has a cap


def deployment_price(dep: Deployment, table: PriceTable) -> Price | None:
    """The table's price for the deployment with ``model_info`` cost fields laid over it."""
    info = dep.info
    base = table.lookup(dep.provider, info.base_model or dep.model)
    if base is None and info.base_model:
        base = table.lookup(dep.provider, dep.model)
    overrides = {
        "input": info.input_cost_per_token,
        "output": info.output_cost_per_token,
        "cache_read": info.cache_read_input_token_cost,
        "cache_write": info.cache_creation_input_token_cost,
        "reasoning": info.output_cost_per_reasoning_token,
    }
    given = {k: float(v) for k, v in overrides.items() if v is not None}
    cap = info.max_output_tokens or info.max_tokens
    if base is None:
        embedding = info.mode == "embedding"
        if "input" not in given or ("output" not in given and not embedding):
            return None
        return Price(input=given["input"], output=given.get("output", 0.0), cache_read=given.get("cache_read"),
                     cache_write=given.get("cache_write"), reasoning=given.get("reasoning"),
                     max_output_tokens=cap, source="model_info")
    if given or cap:
        # An explicit per-token override also replaces the long-context tier it would contradict.
        tier = base.long_context if not ({"input", "output"} & given.keys()) else None
        base = replace(base, **given, long_context=tier, source="table+model_info",
                       max_output_tokens=cap or base.max_output_tokens)
    return base


def output_cap(price: Price | None) -> int:
    return (price.max_output_tokens if price and price.max_output_tokens else None) or DEFAULT_MAX_OUTPUT_TOKENS
