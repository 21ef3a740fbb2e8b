"""The escalations stream: one capped XADD per question, writable without the knowledge package."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from kefu.escalations import EscalationReason, record_escalation, trim_escalations
from kefu.keys import kb_escalations_key
from tests.helpers.processes import loaded_by

AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.mark.redis
async def test_an_escalation_is_one_stream_entry(redis: aioredis.Redis) -> None:
    stream_id = await record_escalation(redis, "能礼品包装吗", EscalationReason.HANDOFF, "web:a",
                                        at=AT)
    assert await redis.xrange(kb_escalations_key()) == [(stream_id, {
        "text": "能礼品包装吗", "reason": "handoff", "conversation": "web:a",
        "at": AT.isoformat()})]
    with pytest.raises(ValueError):
        await record_escalation(redis, "x", "bored", "web:c")


def test_the_action_server_records_escalations_without_numpy(repo_root: Path) -> None:
    statement = "import actions, kefu.escalations"
    assert loaded_by(statement, ["numpy", "knowledge.curation.topics"], repo_root) == []


@pytest.mark.redis
async def test_personal_numbers_never_reach_the_stream(redis: aioredis.Redis) -> None:
    await record_escalation(redis, "快递没到，电话13812345678，身份证11010519491231002X",
                            EscalationReason.LOW_CONFIDENCE, "web:b")
    [(_, fields)] = await redis.xrange(kb_escalations_key())
    assert fields["text"] == "快递没到，电话138****5678，身份证1****************X"


@pytest.mark.redis
async def test_escalations_are_kept_for_the_retention_only(redis: aioredis.Redis) -> None:
    old_ms = int((datetime.now(UTC) - timedelta(days=120)).timestamp() * 1000)
    await redis.xadd(kb_escalations_key(), {"text": "去年的问题", "reason": "handoff",
                                             "conversation": "web:old", "at": AT.isoformat()},
                     id=f"{old_ms}-0")
    await record_escalation(redis, "新问题", EscalationReason.HANDOFF, "web:new",
                            retention=timedelta(days=90))
    assert [f["text"] for _, f in await redis.xrange(kb_escalations_key())] == ["新问题"]
    await asyncio.sleep(0.01)
    assert await trim_escalations(redis, timedelta(seconds=0)) == 1  # the sweeper's hourly trim
