"""Rate limits kept in Redis, so every gateway process counts the same sender and address.

:class:`RateLimiter` is a token bucket per key: ``burst`` messages at once, then ``per_minute``
a minute. A caller over its bucket is refused at once (:class:`~kefu.errors.TooManyRequests`,
HTTP 429 with ``Retry-After``) before any work is done for it, so a flooder slows only itself:
its refused messages never take a Rasa slot another shopper was waiting for.

:class:`FailureThrottle` counts failures (wrong passwords) per key in a fixed window; past the
limit every attempt is refused until the window ends, the right password included.

Both fail open: when Redis cannot be asked, the request goes through (and is logged), because a
Redis blip must not turn into refusing every shopper.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import redis.asyncio as aioredis

from kefu.errors import TooManyRequests
from kefu.keys import gw_rate_key, login_failures_key
from kefu.redis import OUTAGE_ERRORS

logger = logging.getLogger(__name__)

# KEYS[1] bucket; ARGV: capacity, refill per second, cost. Returns {allowed, retry_after_ms}.
# Time comes from Redis (TIME), so every gateway's clock agrees.
_BUCKET_LUA = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local allowed = 0
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait = math.ceil((cost - tokens) / rate * 1000)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return {allowed, wait}
"""


@dataclass(frozen=True)
class Rate:
    """``burst`` at once, then ``per_minute`` a minute; ``per_minute`` 0 switches the limit off."""

    per_minute: float
    burst: int

    @property
    def on(self) -> bool:
        """Whether this limit applies at all."""
        return self.per_minute > 0 and self.burst > 0


class RateLimiter:
    """Token buckets in Redis, shared by every gateway process."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._script = redis.register_script(_BUCKET_LUA)

    async def take(self, scope: str, ident: str, rate: Rate) -> None:
        """Spend one token of ``scope``/``ident``'s bucket, or raise :class:`TooManyRequests`."""
        if not rate.on:
            return
        try:
            allowed, wait_ms = await self._script(
                keys=[gw_rate_key(scope, ident)], args=[rate.burst, rate.per_minute / 60.0, 1])
        except OUTAGE_ERRORS as exc:
            logger.warning("rate limit of %s %s not checked: Redis is away (%s)", scope, ident, exc)
            return
        if not int(allowed):
            retry_after = max(1, math.ceil(int(wait_ms) / 1000))
            raise TooManyRequests(f"too many requests from this {scope}; slow down",
                                  scope=scope, retry_after=retry_after)


class FailureThrottle:
    """Refuses a key after ``limit`` failures within ``window_seconds`` (e.g. wrong passwords)."""

    def __init__(self, redis: aioredis.Redis, *, limit: int, window_seconds: int) -> None:
        self._redis = redis
        self.limit = limit
        self.window = window_seconds

    async def check(self, scope: str, ident: str) -> None:
        """Raise :class:`TooManyRequests` while ``ident`` is over its failures."""
        if self.limit <= 0:
            return
        key = login_failures_key(scope, ident)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(key)
                pipe.ttl(key)
                count, ttl = await pipe.execute()
        except OUTAGE_ERRORS as exc:
            logger.warning("login throttle of %s not checked: Redis is away (%s)", scope, exc)
            return
        if count is not None and int(count) >= self.limit:
            raise TooManyRequests(f"too many failed logins for this {scope}; try again later",
                                  scope=scope, retry_after=max(1, int(ttl)))

    async def failed(self, scope: str, ident: str) -> None:
        """Count one failure of ``ident``; the window starts at its first failure."""
        if self.limit <= 0:
            return
        key = login_failures_key(scope, ident)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, self.window, nx=True)
            await pipe.execute()

    async def forget(self, scope: str, ident: str) -> None:
        """Clear ``ident``'s failures (after a successful login)."""
        await self._redis.delete(login_failures_key(scope, ident))
