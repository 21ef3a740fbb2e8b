"""The one way kefu opens Redis connections, and how it rides out a Redis restart.

A Redis restart (or a network blip) leaves every pooled connection dead. Three things keep a
process working through it without doing anything twice:

- **Health checks**: a connection idle for :data:`HEALTH_CHECK_SECONDS` is PINGed before use; a
  dead one is reconnected (and PINGed once more) before the command goes out, so a stale pooled
  connection costs a reconnect, not a failed request.
- **One retry for idempotent reads**: a read-only command (:data:`READ_ONLY`) that fails on a
  connection error is sent once more on a fresh connection. Writes are never resent by the client:
  a write whose answer was lost may have happened, and resending an XADD or an INCR would do it
  twice. (redis-py's own default resends *every* command up to ten times; kefu turns that off.)
- **Waiting it out** (:func:`patiently`): a caller that knows an operation is safe to repeat (the
  gateway before it has stored a shopper's message, a reader) waits for Redis with backoff for a
  few seconds instead of failing the request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

T = TypeVar("T")

HEALTH_CHECK_SECONDS = 2.0
"""An idle pooled connection is PINGed before use when it was last used longer ago than this."""

SOCKET_TIMEOUT_SECONDS = 5.0
"""A command (not a blocking read: those pass their own block time below this) fails after this."""

READ_RETRY_PAUSE_SECONDS = 0.05

OUTAGE_ERRORS: tuple[type[RedisError], ...] = (RedisConnectionError, RedisTimeoutError)
"""What Redis being away looks like to a client (refused, reset, timed out)."""

READ_ONLY = frozenset({
    "GET", "MGET", "GETEX_RO", "STRLEN", "EXISTS", "TTL", "PTTL", "TYPE", "PING", "TIME",
    "HGET", "HMGET", "HGETALL", "HEXISTS", "HLEN", "HKEYS", "HVALS",
    "LRANGE", "LLEN", "LINDEX", "SMEMBERS", "SISMEMBER", "SCARD",
    "ZRANGE", "ZRANGEBYSCORE", "ZREVRANGE", "ZREVRANGEBYSCORE", "ZRANK", "ZREVRANK", "ZSCORE",
    "ZCARD", "ZCOUNT", "ZMSCORE", "XRANGE", "XREVRANGE", "XLEN", "XINFO", "SCAN", "KEYS",
    "EVALSHA_RO", "EVAL_RO", "DBSIZE", "INFO",
})
"""Commands that change nothing, so sending one twice is harmless (XREAD is left out: a blocking
read times out by design and its caller loops anyway)."""


class HealthCheckedConnection(Connection):
    """A connection whose health check reconnects a dead socket and PINGs once more.

    redis-py's check PINGs with the connection's command retry policy, which kefu sets to "no
    retries" (see :class:`KefuRedis`); without this, a connection left dead by a Redis restart
    would fail the command after it instead of reconnecting first.
    """

    async def check_health(self) -> None:  # noqa: D102 - see the class docstring
        if not self.health_check_interval:
            return
        if asyncio.get_running_loop().time() <= self.next_health_check:
            return
        once_more = Retry(NoBackoff(), 1, supported_errors=OUTAGE_ERRORS)
        await once_more.call_with_retry(self._send_ping, self._ping_failed,
                                        with_failure_count=True)


class KefuRedis(aioredis.Redis):
    """An asyncio client that resends a failed read-only command once, and never a write."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:  # noqa: D102
        send = super().execute_command
        try:
            return await send(*args, **options)  # type: ignore[no-untyped-call]
        except OUTAGE_ERRORS as exc:
            if str(args[0]).upper() not in READ_ONLY:
                raise
            logger.info("Redis %s failed (%s); retrying once", args[0], exc)
            await asyncio.sleep(READ_RETRY_PAUSE_SECONDS)
            return await send(*args, **options)  # type: ignore[no-untyped-call]


def sync_client(url: str) -> redis.Redis:
    """A synchronous client that returns ``str``; used by the CLI and tests."""
    return redis.Redis.from_url(url, decode_responses=True,
                                health_check_interval=HEALTH_CHECK_SECONDS)


def async_client(url: str, max_connections: int = 200) -> aioredis.Redis:
    """An asyncio client that returns ``str``; used by services inside running processes.

    Its pool waits (up to 10 s) for a free connection under bursts instead of failing with
    "Too many connections" (redis-py's default pool raises at 100); connections are health
    checked and reads retried once (see the module docstring).
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url, decode_responses=True, max_connections=max_connections, timeout=10,
        connection_class=HealthCheckedConnection, health_check_interval=HEALTH_CHECK_SECONDS,
        socket_timeout=SOCKET_TIMEOUT_SECONDS, socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0))
    return KefuRedis.from_pool(pool)


class RedisUnavailable(RuntimeError):
    """Redis did not come back within the wait a caller allowed."""


STORE_AWAY: tuple[type[Exception], ...] = (*OUTAGE_ERRORS, RedisUnavailable)
"""Every error meaning "Redis is away": the client's, and :func:`patiently` giving up."""


async def patiently(operation: Callable[[], Awaitable[T]], *, seconds: float = 8.0,
                    what: str = "a Redis operation") -> T:
    """Run ``operation``, waiting up to ``seconds`` for Redis when it is away (with backoff).

    Only for operations that are safe to repeat: reads, or writes the caller knows did not
    happen or happen idempotently. Raises :class:`RedisUnavailable` when Redis stays away.
    """
    deadline = time.monotonic() + seconds
    pause = 0.1
    while True:
        try:
            return await operation()
        except OUTAGE_ERRORS as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RedisUnavailable(f"Redis is not reachable ({exc}) for {what}") from exc
            logger.warning("Redis is away (%s) during %s; trying again in %.1fs", exc, what,
                           min(pause, left))
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, 1.0)
