"""Actions that move the shopper to a person, or keep them with the bot when nobody is there."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import replies
from actions.actions import Events, KefuAction, analysis_of, read_message, stuck_of, utter
from actions.policy import (
    PENDING_SLOT,
    STUCK_SLOT,
    HandoffPlan,
    failure_detail,
    plan_for_intent,
)
from handoff.models import HandoffReason
from knowledge.models import DecisionKind


class ActionHandoff(KefuAction):
    """The shopper asked for a person, or complained: open a ticket."""

    def name(self) -> str:
        """See base class."""
        return "action_handoff"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> Events:
        """Hand off with the reason and priority the intent implies."""
        message = read_message(tracker)
        await self.remember_order_number(tracker, message)
        await self.services.conversations.record_analysis(
            message.conversation_id, analysis_of(message, DecisionKind.HANDOFF.value))
        plan = plan_for_intent(message.intent, tracker.get_slot("last_category"))
        stuck = stuck_of(tracker)
        still_stuck = tracker.get_slot("last_decision") != DecisionKind.ANSWER.value
        if stuck is not None and still_stuck and plan.reason is HandoffReason.EXPLICIT_REQUEST:
            plan = HandoffPlan(plan.reason, plan.group, plan.priority,
                               f"要求人工，{failure_detail(stuck)}")
        return await self.hand_off(dispatcher, tracker, message, plan)


class ActionLeaveMessage(KefuAction):
    """Nobody was online and the shopper chose to leave a message: open the ticket now."""

    def name(self) -> str:
        """See base class."""
        return "action_leave_message"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> Events:
        """Open the ticket that was offered; the handoff service asks for the message."""
        message = read_message(tracker)
        await self.services.conversations.record_analysis(
            message.conversation_id, analysis_of(message, DecisionKind.HANDOFF.value))
        plan = HandoffPlan.from_slot(tracker.get_slot(PENDING_SLOT)) or plan_for_intent(
            "request_human", tracker.get_slot("last_category"))
        return await self.open_ticket(dispatcher, tracker, message, plan, tell=False)


class ActionKeepWithBot(KefuAction):
    """Nobody was online and the shopper chose to keep asking the bot."""

    def name(self) -> str:
        """See base class."""
        return "action_keep_with_bot"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> Events:
        """Start afresh: the offered handoff and the failures so far are forgotten."""
        message = read_message(tracker)
        await self.services.conversations.record_analysis(
            message.conversation_id, analysis_of(message, message.intent or "keep_with_bot"))
        utter(dispatcher, replies.keep_with_bot(message.language))
        return [SlotSet(PENDING_SLOT, None), SlotSet(STUCK_SLOT, None)]
