"""The escalations stream: one capped XADD per question, writable without the knowledge package."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from kefu.escalations import EscalationReason, record_escalation
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
