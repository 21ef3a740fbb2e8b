"""The one way kefu opens Redis connections."""

from __future__ import annotations

import redis
import redis.asyncio as aioredis


def sync_client(url: str) -> redis.Redis:
    """A synchronous client that returns ``str``; used by the CLI and tests."""
    return redis.Redis.from_url(url, decode_responses=True)


def async_client(url: str, max_connections: int = 200) -> aioredis.Redis:
    """An asyncio client that returns ``str``; used by services inside running processes.

    Its pool waits (up to 10 s) for a free connection under bursts instead of failing with
    "Too many connections" (redis-py's default pool raises at 100).
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url, decode_responses=True, max_connections=max_connections, timeout=10)
    return aioredis.Redis.from_pool(pool)
