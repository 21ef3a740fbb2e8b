"""The escalations stream: one capped XADD per question, writable without the knowledge package."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from kefu.escalations import EscalationReason, record_escalation
from kefu.keys import kb_escalations_key
from kefu.redis import async_client

AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    redis = async_client(redis_url)
    yield redis
    await redis.aclose()


@pytest.mark.redis
async def test_an_escalation_is_one_stream_entry(client: aioredis.Redis) -> None:
    stream_id = await record_escalation(client, "能礼品包装吗", EscalationReason.HANDOFF, "web:a",
                                        at=AT)
    assert await client.xrange(kb_escalations_key()) == [(stream_id, {
        "text": "能礼品包装吗", "reason": "handoff", "conversation": "web:a",
        "at": AT.isoformat()})]
    with pytest.raises(ValueError):
        await record_escalation(client, "x", "bored", "web:c")


def test_the_action_server_records_escalations_without_numpy(repo_root: Path) -> None:
    code = ("import sys, actions, kefu.escalations; "
            "print(sorted(m for m in ('numpy', 'knowledge.curation.topics') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=repo_root, check=True)
    assert result.stdout.strip() == "[]"
