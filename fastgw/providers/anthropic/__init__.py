"""Anthropic Messages API provider (``anthropic/<model>``)."""
from __future__ import annotations

from .provider import ANTHROPIC_VERSION, AnthropicProvider
from .request import JSON_TOOL_NAME, THINKING_BUDGETS, build_messages_body, default_max_tokens
from .response import message_to_openai, usage_to_openai
from .stream import AnthropicStreamDecoder, MessagesPassthroughDecoder, messages_response_usage

__all__ = [
    "ANTHROPIC_VERSION",
    "AnthropicProvider",
    "AnthropicStreamDecoder",
    "JSON_TOOL_NAME",
    "MessagesPassthroughDecoder",
    "THINKING_BUDGETS",
    "build_messages_body",
    "default_max_tokens",
    "message_to_openai",
    "messages_response_usage",
    "usage_to_openai",
]
