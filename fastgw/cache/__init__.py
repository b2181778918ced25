"""Exact-match response cache (``litellm_settings.cache``).

``service.ResponseCache`` is owned by the Gateway; ``serve`` holds the steps the routes
call (plan, serve a hit, keep an answer).
"""
from .policy import CachePlan, CacheSettings, parse_cache_settings
from .service import ResponseCache

__all__ = ["CachePlan", "CacheSettings", "ResponseCache", "parse_cache_settings"]
