"""Old report days rolled up: the same figures from a few JSON fields, the raw counters gone.

Uses the hand-worked day of tests/quality/test_reports.py (2026-12-07).
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import pytest
import redis.asyncio as aioredis

from handoff.service import HandoffService
from kefu.conversation import ConversationStore
from kefu.keys import qa_report_key, qa_rollup_key, qa_rollup_lock_key
from quality.rollup import roll_up, roll_up_day
from quality.runtime import QualityRuntime
from quality.settings import QualitySettings
from tests.handoff.conftest import make_settings
from tests.quality.test_reports import DAY, History, play_the_day

pytestmark = pytest.mark.redis

@pytest.fixture
async def history(redis: aioredis.Redis) -> History:
    return await play_the_day(redis)


SCOPES = ["store", "g:aftersale", "g:presale", "g:logistics", "a:li", "a:wu"]


async def raw_keys(redis: aioredis.Redis) -> list[str]:
    return sorted([str(k) async for k in redis.scan_iter(
        match=qa_report_key(DAY.isoformat(), "*"))])


async def test_a_rolled_up_day_reports_the_same_figures(history: History,
                                                        redis: aioredis.Redis) -> None:
    r = history.reports
    before = {scope: await r.report(DAY, scope) for scope in SCOPES}
    records = await r.records(DAY)
    assert len(await raw_keys(redis)) > 20
    assert await roll_up(redis, r, DAY + timedelta(days=7), after_days=7) == []  # not old yet
    assert await roll_up(redis, r, DAY + timedelta(days=8), after_days=7) == [DAY]
    assert await raw_keys(redis) == [qa_report_key(DAY.isoformat(), "closed")]
    rolled = await redis.hgetall(qa_rollup_key(DAY.isoformat()))
    assert set(rolled) == set(SCOPES)  # groups configured, agents found in the counters
    assert await redis.ttl(qa_rollup_key(DAY.isoformat())) > 350 * 24 * 3600
    for scope in SCOPES:
        assert await r.report(DAY, scope) == before[scope], scope
    assert await r.records(DAY) == records  # the CSV of chats still works
    assert await r.drill(DAY, "convs") == []  # drill-downs do not survive the roll-up
    unknown = await r.report(DAY, "a:nobody")  # zero, with the store-wide figures
    assert (unknown.conversations, unknown.top_unanswered) == (0, before["store"].top_unanswered)
    assert await roll_up(redis, r, DAY + timedelta(days=9), after_days=7) == []  # once


async def test_one_gateway_at_a_time(history: History, redis: aioredis.Redis) -> None:
    await redis.set(qa_rollup_lock_key(), "1", ex=60)  # another gateway is rolling up
    assert await roll_up(redis, history.reports, DAY + timedelta(days=30)) == []
    assert await redis.exists(qa_rollup_key(DAY.isoformat())) == 0
    await redis.delete(qa_rollup_lock_key())
    assert await roll_up(redis, history.reports, DAY + timedelta(days=30)) == [DAY]
    assert await redis.exists(qa_rollup_lock_key()) == 0


async def test_a_day_without_counters_is_left_alone(history: History,
                                                    redis: aioredis.Redis) -> None:
    assert not await roll_up_day(redis, history.reports, DAY - timedelta(days=1))
    assert await redis.exists(qa_rollup_key((DAY - timedelta(days=1)).isoformat())) == 0


async def test_the_gateway_runtime_rolls_up_on_its_own(redis: aioredis.Redis) -> None:
    old_day = date.today() - timedelta(days=10)  # older than a week, younger than 90 days
    old = old_day.isoformat()
    await redis.hset(qa_report_key(old, "counts"), "h10:convs", 3)
    await redis.zadd(qa_report_key(old, "convs"), {"web:x": 1, "web:y": 2, "web:z": 3})
    service = HandoffService(redis, ConversationStore(redis), make_settings())
    runtime = QualityRuntime(redis, service, settings=QualitySettings(
        rollup_after_days=7, rollup_every_seconds=3600))
    await runtime.start(anger_model=False)
    try:
        for _ in range(100):
            if await redis.exists(qa_rollup_key(old)):
                break
            await asyncio.sleep(0.05)
    finally:
        await runtime.stop()
    assert await redis.exists(qa_rollup_key(old)) == 1
    report = await runtime.reports.report(old_day)
    assert report.conversations == 3 and report.hourly_conversations[10] == 3
    assert await redis.exists(qa_report_key(old, "convs")) == 0
