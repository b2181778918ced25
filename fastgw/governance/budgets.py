"""Budgets that hold under concurrency: reserve the worst case, then settle the actual cost.

Before a request goes upstream its worst-case cost is *reserved* against every budget
that applies (key, team, user). A request is refused if spend + outstanding reservations
+ its own reservation would pass the limit, so however many requests run at once the
spend can only pass a budget by what the last admitted requests cost beyond their
reservation, which is nothing when the reservation really is the worst case. When the
call finishes the reservation is replaced by the actual cost.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .._core.request import RequestInfo, text_prompt
from ..tokens import count_message_tokens, count_prompt
from .pricing import Price, output_cap, worst_case_cost

_EPS = 1e-12
INEXACT_COUNT_MARGIN = 1.25  # prompt tokens counted with a stand-in tokenizer may be undercounted


def exceeds(spend: float, reserved: float, reserve: float, max_budget: float) -> bool:
    return spend >= max_budget - _EPS or spend + reserved + reserve > max_budget + _EPS


def budget_message(level: str, ident: str, spend: float, reserved: float, reserve: float, max_budget: float,
                   resets_at: str | None) -> str:
    where = f"{level} {ident}" if level != "key" else f"key {ident}"
    text = (f"Budget has been exceeded for {where}: spend ${spend:.6f} of max_budget ${max_budget:.6f}")
    if reserved or reserve:
        text += (f" (${reserved:.6f} reserved by requests in flight; this request may cost up to "
                 f"${reserve:.6f})")
    if resets_at:
        text += f"; the budget resets at {resets_at}"
    return text + "."


@dataclass(frozen=True, slots=True)
class PromptCount:
    tokens: int
    exact: bool


def prompt_tokens(endpoint: str, model: str, body: dict, info: RequestInfo | None = None) -> PromptCount:
    """Prompt tokens of a request, counted with the token counter (exact for OpenAI models).

    ``info`` is what validation extracted from the body (``fastgw._core.request``): counted
    from it, the messages are not walked twice. It is used only for the body it came from."""
    if info is not None and info.body is body:
        count = count_prompt(model, info.prompt, info.tools)
    elif endpoint in ("chat.completions", "messages"):
        messages = body.get("messages")
        if not isinstance(messages, list):
            return PromptCount(0, False)
        system = body.get("system") if endpoint == "messages" else None
        if isinstance(system, str) and system:
            messages = [{"role": "system", "content": system}, *messages]
        count = count_message_tokens(model, messages, body.get("tools") if isinstance(body.get("tools"), list) else None)
    else:
        count = count_prompt(model, text_prompt(body.get("prompt") if endpoint == "completions" else body.get("input")))
    return PromptCount(count.tokens, count.exact)


def requested_output_tokens(endpoint: str, body: dict, price: Price | None) -> int:
    """``max_tokens`` (or ``max_completion_tokens``) times ``n``, else the model's output cap."""
    if endpoint == "embeddings":
        return 0
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    cap = output_cap(price)
    tokens = min(int(limit), cap) if isinstance(limit, int) and limit > 0 else cap
    n = body.get("n") if isinstance(body.get("n"), int) and body.get("n", 1) > 1 else 1
    return tokens * n


def reservation(prices: Sequence[Price], endpoint: str, body: dict, prompt: PromptCount) -> float:
    """Worst case over the deployments the router may pick for this model group."""
    tokens = prompt.tokens if prompt.exact else int(prompt.tokens * INEXACT_COUNT_MARGIN) + 1
    worst = 0.0  # a loop, not max() over a generator: this runs for every request
    for price in prices:
        cost = worst_case_cost(price, tokens, requested_output_tokens(endpoint, body, price))
        if cost > worst:
            worst = cost
    return worst
