"""Old report days rolled up: each day's reports kept as JSON, its raw counters deleted.

The per-day counters of :mod:`quality.reports` hold one sorted-set member per conversation and
ticket (a Double 11 day: ~0.5 GB). A report needs them only while the day is recent (drill-downs,
late events); after ``after_days`` (``KEFU_QA_ROLLUP_AFTER_DAYS``, 7) :func:`roll_up` computes the
day's report once for the store, every group and every agent the day counted, keeps them in
``qa_rollup_key(day)`` (a hash, a few KB per scope, 400 days: last year's Double 11 stays
comparable) and deletes the raw keys — all but ``closed``, which lists the day's QA records (kept
90 days with them). :meth:`quality.reports.Reports.report` reads a rolled day from that hash; its
drill-downs return nothing (the records and the CSV of chats still work).

Each gateway runs it hourly (:class:`quality.runtime.QualityRuntime`); a lock key lets one at a
time work, since one deleting a day's counters while another computes it would keep zeros.
"""

from __future__ import annotations

import logging
import re
from datetime import date, timedelta
from typing import Any, cast

import redis.asyncio as aioredis

from kefu.keys import qa_report_key, qa_rollup_key, qa_rollup_lock_key
from quality.reports import REPORT_TTL_DAYS, Reports

logger = logging.getLogger(__name__)

ROLLUP_TTL_SECONDS = 400 * 24 * 3600
ROLLUP_LOCK_SECONDS = 600
DEFAULT_AFTER_DAYS = 7


_SCOPE_FIELD = re.compile(r":((?:g|a):[^:]+)$")  # the scope a counter field ends with


async def roll_up(redis: aioredis.Redis, reports: Reports, today: date,
                  after_days: int = DEFAULT_AFTER_DAYS) -> list[date]:
    """Roll up every day older than ``after_days`` still held raw; the days rolled up."""
    lock = qa_rollup_lock_key()
    if not await redis.set(lock, "1", nx=True, ex=ROLLUP_LOCK_SECONDS):
        return []  # another gateway is at it
    try:
        rolled = []
        for age in range(after_days + 1, REPORT_TTL_DAYS + 1):
            day = today - timedelta(days=age)
            if await roll_up_day(redis, reports, day):
                rolled.append(day)
        if rolled:
            logger.info("rolled up report days %s", ", ".join(d.isoformat() for d in rolled))
        return rolled
    finally:
        await redis.delete(lock)


async def roll_up_day(redis: aioredis.Redis, reports: Reports, day: date) -> bool:
    """Keep ``day``'s reports (store, groups, agents) as JSON and drop its raw counters."""
    d = day.isoformat()
    counts = await redis.hkeys(qa_report_key(d, "counts"))
    if not counts:  # nothing raw: rolled up already, or a day without a message
        return False
    scopes = {"store", *(f"g:{g}" for g in reports.groups)}
    scopes |= {m.group(1) for f in counts if (m := _SCOPE_FIELD.search(str(f)))}
    kept = {scope: (await reports.raw_report(day, scope)).model_dump_json()
            for scope in sorted(scopes)}
    closed = qa_report_key(d, "closed")
    raw = [k async for k in redis.scan_iter(match=qa_report_key(d, "*"), count=1000)
           if str(k) != closed]
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(qa_rollup_key(d), mapping=cast(Any, kept))
        pipe.expire(qa_rollup_key(d), ROLLUP_TTL_SECONDS)
        for start in range(0, len(raw), 500):
            pipe.delete(*raw[start:start + 500])
        await pipe.execute()
    return True
