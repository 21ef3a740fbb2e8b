"""When the bot gives up and whom it hands over to: plain rules the actions apply.

Kept free of Rasa so the rules read (and test) on their own.
"""

from __future__ import annotations

from dataclasses import dataclass

from handoff.context import CATEGORY_GROUPS
from handoff.models import HandoffReason, Priority

REPEATED_FAILURE_LIMIT = 2
"""Consecutive clarifications, or "not helpful" clicks, after which a person takes over."""

CLARIFY_STREAK = "clarify_streak"
"""Conversation counter: clarifications in a row without an answer."""

NOT_HELPFUL_STREAK = "not_helpful_streak"
"""Conversation counter: "not helpful" clicks since the last "helpful"."""

INTENT_GROUPS = {"complain": "aftersale"}
"""Intents that go to one group whatever was discussed before."""


@dataclass(frozen=True)
class HandoffPlan:
    """Why, to whom and how urgently a conversation goes to a person."""

    reason: HandoffReason
    group: str | None  # None: let the handoff service infer it from the conversation
    priority: Priority | None  # None: the handoff service's default for the reason


def group_for(category: str | None, intent: str | None = None) -> str | None:
    """The skill group for a handoff, from the intent first, then the knowledge category."""
    if intent in INTENT_GROUPS:
        return INTENT_GROUPS[intent]
    return CATEGORY_GROUPS.get(category or "")


def plan_for_intent(intent: str | None, last_category: str | None) -> HandoffPlan:
    """The handoff a shopper's words ask for: a complaint jumps the queue, a request waits."""
    if intent == "complain":
        return HandoffPlan(HandoffReason.COMPLAINT, group_for(last_category, intent), Priority.HIGH)
    return HandoffPlan(HandoffReason.EXPLICIT_REQUEST, group_for(last_category, intent), None)


def plan_for_failure(category: str | None, *, repeated: bool) -> HandoffPlan:
    """The handoff when the bot could not answer (once, or again and again)."""
    reason = HandoffReason.REPEATED_FAILURE if repeated else HandoffReason.LOW_CONFIDENCE
    return HandoffPlan(reason, group_for(category), None)


def gives_up(streak: int) -> bool:
    """True when a failure streak is long enough to stop trying."""
    return streak >= REPEATED_FAILURE_LIMIT
