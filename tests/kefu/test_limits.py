"""Rate limits and login throttles kept in Redis: shared by every process, open when Redis is not."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from kefu.errors import TooManyRequests
from kefu.limits import FailureThrottle, Rate, RateLimiter
from kefu.redis import async_client
from tests.helpers.processes import free_port

pytestmark = pytest.mark.redis


async def test_a_bucket_is_shared_by_every_gateway(redis_url: str) -> None:
    one, two = async_client(redis_url), async_client(redis_url)  # two gateway processes
    try:
        a, b = RateLimiter(one), RateLimiter(two)
        rate = Rate(per_minute=60, burst=4)
        for limiter in (a, b, a, b):
            await limiter.take("sender", "web:flood", rate)
        with pytest.raises(TooManyRequests) as refused:
            await b.take("sender", "web:flood", rate)
        assert refused.value.retry_after == 1 and refused.value.scope == "sender"
        await a.take("sender", "web:calm", rate)  # someone else's bucket is full
        await asyncio.sleep(1.05)  # one token a second
        await a.take("sender", "web:flood", rate)
    finally:
        await one.aclose()
        await two.aclose()


async def test_a_limit_of_zero_is_off(redis: aioredis.Redis) -> None:
    limiter = RateLimiter(redis)
    for _ in range(50):
        await limiter.take("address", "10.0.0.1", Rate(0, 0))


async def test_limits_fail_open_when_redis_is_away() -> None:
    gone = async_client(f"redis://127.0.0.1:{free_port()}/0")
    try:
        await RateLimiter(gone).take("sender", "web:x", Rate(1, 1))
        await FailureThrottle(gone, limit=1, window_seconds=60).check("account", "x")
    finally:
        await gone.aclose()


async def test_failures_lock_for_the_window_then_unlock(redis: aioredis.Redis) -> None:
    throttle = FailureThrottle(redis, limit=3, window_seconds=1)
    for _ in range(3):
        await throttle.check("account", "li")
        await throttle.failed("account", "li")
    with pytest.raises(TooManyRequests) as refused:
        await throttle.check("account", "li")
    assert refused.value.retry_after == 1
    await asyncio.sleep(1.1)
    await throttle.check("account", "li")
