"""The escalations stream: shopper questions the bot did not handle, for the knowledge team.

The actions append to it (a low-confidence decision, a "not helpful" click) with one capped XADD;
`knowledge.curation.topics` reads it back, groups the questions into topics and marks them resolved
once a draft made from them is published. Writing needs nothing but Redis, so an action records
an escalation without importing the knowledge curation package.

The stream outlives the chats it comes from, so what goes in is masked (phone and ID numbers,
:func:`kefu.privacy.mask`; the agent still sees them in the live ticket) and kept only
``KEFU_ESCALATIONS_RETENTION_DAYS`` (90 by default): every write trims what is older.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, cast

import redis.asyncio as aioredis

from kefu.keys import kb_escalations_key
from kefu.privacy import mask
from kefu.settings import get_settings

ESCALATIONS_MAX_LEN = 20_000  # approximate cap of the escalations stream


class EscalationReason(StrEnum):
    """Why a question counts as one the knowledge base did not handle."""

    HANDOFF = "handoff"  # the conversation went to a person
    LOW_CONFIDENCE = "low_confidence"  # the knowledge decision was clarify or handoff
    NOT_HELPFUL = "not_helpful"  # the shopper said the answer did not help
    NONE_FIT = "none_fit"  # none of the clarification's options was what the shopper meant


async def record_escalation(
    redis: aioredis.Redis,
    text: str,
    reason: EscalationReason | str,
    conversation_id: str,
    at: datetime | None = None,
    retention: timedelta | None = None,
) -> str:
    """Append one escalated question (masked) to the escalations stream; returns its stream id.

    Called by the actions (low confidence, "not helpful"). Cheap: one round trip, an XADD capped
    at about :data:`ESCALATIONS_MAX_LEN` entries and a trim of entries older than ``retention``
    (default: the configured retention).
    """
    when = at or datetime.now(UTC)
    fields = {"text": mask(text), "reason": EscalationReason(reason).value,
              "conversation": conversation_id, "at": when.isoformat()}
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xadd(kb_escalations_key(), cast(Any, fields), maxlen=ESCALATIONS_MAX_LEN,
                  approximate=True)
        pipe.xtrim(kb_escalations_key(), minid=_oldest_kept(retention), approximate=False)
        stream_id, _trimmed = await pipe.execute()
    return str(stream_id)


async def trim_escalations(redis: aioredis.Redis, retention: timedelta | None = None) -> int:
    """Drop escalations older than ``retention`` (default: the configured one); how many went."""
    trimmed: int = await redis.xtrim(kb_escalations_key(), minid=_oldest_kept(retention),
                                     approximate=False)
    return trimmed


def _oldest_kept(retention: timedelta | None) -> str:
    keep = retention if retention is not None else timedelta(
        days=get_settings().escalations_retention_days)
    return str(int((datetime.now(UTC) - keep).timestamp() * 1000))
