"""When the bot gives up and whom it hands over to: plain rules the actions apply.

A clarification is a question to the shopper, not a failure in itself; what counts is whether the
shopper stays *stuck on one topic*. The bot remembers the topic it last failed on (`Stuck`: the
entries it offered or answered, and how often it failed there) in the Rasa slot ``stuck_on``.
A new question whose candidates do not touch that topic starts afresh, so a shopper who ignores
the buttons and asks the next thing is answered (or clarified) instead of handed off; only
:data:`REPEATED_FAILURE_LIMIT` failures on the same topic hand off.

Kept free of Rasa so the rules read (and test) on their own.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from handoff.context import CATEGORY_GROUPS
from handoff.models import HandoffReason, Priority

REPEATED_FAILURE_LIMIT = 2
"""Failures on one topic (clarifications, "not helpful" clicks) after which a person takes over."""

STUCK_SLOT = "stuck_on"
"""Rasa slot holding :class:`Stuck` as a dict (``None``: the shopper is not stuck)."""

PENDING_SLOT = "pending_handoff"
"""Rasa slot holding the :class:`HandoffPlan` offered while nobody could take it (a dict)."""

INTENT_GROUPS = {"complain": "aftersale"}
"""Intents that go to one group whatever was discussed before."""


class Failure(StrEnum):
    """How the bot failed the shopper once."""

    CLARIFIED = "clarified"  # it had to ask which of a few entries was meant
    NOT_HELPFUL = "not_helpful"  # the shopper said an answer did not help


@dataclass(frozen=True)
class Stuck:
    """The topic the shopper is stuck on: the entries involved and the failures there so far."""

    entries: frozenset[str]
    failures: tuple[Failure, ...]
    question: str = ""  # the shopper's last words on the topic

    @property
    def count(self) -> int:
        """How many times the bot failed on this topic."""
        return len(self.failures)

    def to_slot(self) -> dict[str, Any]:
        """The value kept in the ``stuck_on`` slot."""
        return {"entries": sorted(self.entries), "failures": [f.value for f in self.failures],
                "question": self.question}

    @classmethod
    def from_slot(cls, value: object) -> Stuck | None:
        """The slot's value back (``None`` for an empty or unreadable slot)."""
        if not isinstance(value, Mapping):
            return None
        try:
            failures = tuple(Failure(f) for f in value.get("failures") or ())
            entries = frozenset(str(e) for e in value.get("entries") or ())
        except (TypeError, ValueError):
            return None
        return cls(entries, failures, str(value.get("question") or "")) if failures else None


def same_topic(stuck: Stuck | None, entries: Collection[str]) -> bool:
    """Whether a decision about ``entries`` is about the topic the shopper is stuck on."""
    return stuck is not None and not stuck.entries.isdisjoint(entries)


def fail(stuck: Stuck | None, failure: Failure, entries: Collection[str],
         question: str) -> Stuck:
    """The topic after one more failure about ``entries``: the same one, or a fresh one."""
    if stuck is not None and same_topic(stuck, entries):
        return Stuck(frozenset(entries) | stuck.entries, (*stuck.failures, failure),
                     question or stuck.question)
    return Stuck(frozenset(entries), (failure,), question)


def after_answer(stuck: Stuck | None, entry_id: str) -> Stuck | None:
    """The topic after the bot answered with ``entry_id``.

    An answer off the stuck topic means the shopper moved on; the same answer again keeps the
    topic, so a second "not helpful" on it is the second failure.
    """
    return stuck if same_topic(stuck, [entry_id]) else None


def gives_up(stuck: Stuck | None) -> bool:
    """True when the bot has failed often enough on one topic to stop trying."""
    return stuck is not None and stuck.count >= REPEATED_FAILURE_LIMIT


def failure_detail(stuck: Stuck) -> str:
    """What went wrong, for the agent's ticket summary ("2 次澄清未解决")."""
    kinds = set(stuck.failures)
    if kinds == {Failure.CLARIFIED}:
        return f"{stuck.count} 次澄清未解决"
    if kinds == {Failure.NOT_HELPFUL}:
        return f"{stuck.count} 次回答没帮助"
    return f"{stuck.count} 次未解决（澄清、没帮助）"


@dataclass(frozen=True)
class HandoffPlan:
    """Why, to whom and how urgently a conversation goes to a person."""

    reason: HandoffReason
    group: str | None  # None: let the handoff service infer it from the conversation
    priority: Priority | None  # None: the handoff service's default for the reason
    detail: str | None = field(default=None)  # the summary's "why" ("2 次澄清未解决")

    def to_slot(self) -> dict[str, Any]:
        """The value kept in the ``pending_handoff`` slot while the shopper chooses."""
        return {"reason": self.reason.value, "group": self.group,
                "priority": self.priority.value if self.priority else None,
                "detail": self.detail}

    @classmethod
    def from_slot(cls, value: object) -> HandoffPlan | None:
        """The slot's value back (``None`` when empty or unreadable)."""
        if not isinstance(value, Mapping):
            return None
        try:
            priority = value.get("priority")
            return cls(HandoffReason(value["reason"]), value.get("group"),
                       Priority(priority) if priority else None, value.get("detail"))
        except (KeyError, TypeError, ValueError):
            return None


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


def plan_for_failure(category: str | None, stuck: Stuck | None = None) -> HandoffPlan:
    """The handoff when the bot could not answer: at once, or after failing on one topic."""
    if stuck is None:
        return HandoffPlan(HandoffReason.LOW_CONFIDENCE, group_for(category), None)
    return HandoffPlan(HandoffReason.REPEATED_FAILURE, group_for(category), None,
                       failure_detail(stuck))
