"""The escalations stream: shopper questions the bot did not handle, for the knowledge team.

The actions append to it (a low-confidence decision, a "not helpful" click) with one capped XADD;
`knowledge.curation.topics` reads it back, groups the questions into topics and marks them resolved
once a draft made from them is published. Writing needs nothing but Redis, so an action records
an escalation without importing the knowledge curation package.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

import redis.asyncio as aioredis

from kefu.keys import kb_escalations_key

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
) -> str:
    """Append one escalated question to the escalations stream; returns its stream id.

    Called by the actions (low confidence, "not helpful"). Cheap: one XADD capped at about
    :data:`ESCALATIONS_MAX_LEN` entries.
    """
    when = at or datetime.now(UTC)
    fields = {"text": text, "reason": EscalationReason(reason).value,
              "conversation": conversation_id, "at": when.isoformat()}
    stream_id = await redis.xadd(kb_escalations_key(), cast(Any, fields),
                                 maxlen=ESCALATIONS_MAX_LEN, approximate=True)
    return str(stream_id)
