"""The one way kefu opens Redis connections."""

from __future__ import annotations

import redis
import redis.asyncio as aioredis


def sync_client(url: str) -> redis.Redis:
    """A synchronous client that returns ``str``; used by the CLI and tests."""
    return redis.Redis.from_url(url, decode_responses=True)


def async_client(url: str) -> aioredis.Redis:
    """An asyncio client that returns ``str``; used by services inside running processes."""
    return aioredis.Redis.from_url(url, decode_responses=True)
