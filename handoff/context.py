"""Building the context packet: everything the bot knew, read from the conversation record."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime

from handoff.models import ContextPacket, HandoffReason, Priority
from kefu.conversation import BotAnalysis, ConversationStore, Role, Turn

CATEGORY_GROUPS = {
    "presale": "presale", "product": "presale", "account": "presale",
    "aftersale": "aftersale", "payment": "aftersale",
    "logistics": "logistics",
}
"""Knowledge categories (``knowledge.models.Category``) to the skill group that answers them."""

REASON_LABELS = {
    HandoffReason.EXPLICIT_REQUEST: "要求人工",
    HandoffReason.LOW_CONFIDENCE: "机器人无法回答",
    HandoffReason.REPEATED_FAILURE: "多次未解决",
    HandoffReason.COMPLAINT: "投诉",
    HandoffReason.OFFLINE_MESSAGE: "留言",
    HandoffReason.REOPENED: "结束后又来消息，已重新打开",
}

QUESTION_INTENTS = frozenset({"ask_question", "nlu_fallback"})
"""Intents whose messages went to the knowledge decision: the shopper's real questions."""

SUMMARY_MAX_CHARS = 120


def default_priority(reason: HandoffReason) -> Priority:
    """Complaints jump ahead; everything else waits its turn."""
    return Priority.HIGH if reason is HandoffReason.COMPLAINT else Priority.NORMAL


def infer_group(analyses: Sequence[BotAnalysis], groups: Sequence[str], default: str) -> str:
    """The skill group of the latest knowledge category the bot saw, else ``default``."""
    for analysis in reversed(analyses):
        group = CATEGORY_GROUPS.get(analysis.category or "")
        if group is not None and group in groups:
            return group
    return default


def last_question(transcript: Sequence[Turn], analyses: Sequence[BotAnalysis]) -> str | None:
    """The shopper's last real question: one the bot tried to answer, not a click or "转人工".

    Without analyses (a ticket opened over the API) the last typed shopper message stands in.
    """
    for analysis in reversed(analyses):
        asked = analysis.candidates or analysis.intent in QUESTION_INTENTS
        if asked and analysis.text and not analysis.text.startswith("/"):
            return " ".join(analysis.text.split())
    if analyses:
        return None
    said = [t.text for t in transcript if t.role is Role.SHOPPER and not t.text.startswith("/")]
    return " ".join(said[-1].split()) if said else None


def summarise(reason: HandoffReason, transcript: Sequence[Turn], slots: Mapping[str, str],
              analyses: Sequence[BotAnalysis] = (), detail: str | None = None) -> str:
    """One line for the queue: what the shopper needs, why the bot stopped, the order number.

    E.g. "鞋子脏了怎么洗 · 2 次澄清未解决 · 订单 2026112012345".
    """
    parts = [p for p in (last_question(transcript, analyses), detail or REASON_LABELS[reason]) if p]
    order = slots.get("order_number") or slots.get("order_id")
    if order:
        parts.append(f"订单 {order}")
    line = " · ".join(parts)
    return line if len(line) <= SUMMARY_MAX_CHARS else line[: SUMMARY_MAX_CHARS - 1] + "…"


async def build_packet(
    conversations: ConversationStore, *, ticket_id: str, conversation_id: str, channel: str,
    reason: HandoffReason, priority: Priority, group: str | None, groups: Sequence[str],
    default_group: str, summary: str | None, slots: Mapping[str, str] | None,
    display_name: str | None, now: datetime, detail: str | None = None,
) -> ContextPacket:
    """Read transcript, analyses, slots and profile and freeze them into a packet."""
    transcript, analyses, stored_slots, profile = await asyncio.gather(
        conversations.transcript(conversation_id), conversations.analyses(conversation_id),
        conversations.slots(conversation_id), conversations.profile(conversation_id))
    merged = {**stored_slots, **(slots or {})}
    return ContextPacket(
        ticket_id=ticket_id, conversation_id=conversation_id, channel=channel,
        display_name=display_name or profile.get("display_name") or None,
        language=profile.get("language") or None, reason=reason, priority=priority,
        group=group or infer_group(analyses, groups, default_group),
        summary=summary or summarise(reason, transcript, merged, analyses, detail),
        transcript=transcript, analyses=analyses, slots=merged,
        handoff_turn_id=transcript[-1].id if transcript else None, created_at=now,
    )
