"""Order questions the bot answers itself: "我的订单 <number> 到哪了", verified first.

:class:`ActionOrderStatus` looks the order up in the store's order system (``Services.orders``).
An order's details go only to its owner (:mod:`orders.verification`): a conversation whose
channel vouches for the store account that placed it, or one that typed the phone's last four
digits (:class:`ActionVerifyOrder`). Verified orders are kept in the ``verified_orders`` slot for
the rest of the conversation. Until then the bot only says the order exists, and a person is
always one button away; too many wrong digits hand the chat to a person.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import order_replies
from actions.actions import (
    ActionCaptureOrderNumber,
    Events,
    KefuAction,
    Message,
    analysis_of,
    read_message,
    utter,
)
from actions.policy import HandoffPlan
from handoff.models import HandoffReason
from orders.errors import OrderSystemUnavailable
from orders.models import Order
from orders.settings import get_settings
from orders.verification import owned_by_account, phone_tail, tail_matches

logger = logging.getLogger(__name__)

VERIFIED_SLOT = "verified_orders"  # order ids this conversation proved it owns
PENDING_SLOT = "order_to_verify"  # the order waiting for the phone's last four digits
FAILURES_SLOT = "verify_failures"  # wrong digits typed for it
ASKED_SLOT = "order_asked"  # the bot asked for an order number to look up
ORDER_GROUP = "logistics"


def store_account(tracker: Tracker) -> str | None:
    """The store account the channel says is logged in (message metadata), if any."""
    metadata: dict[str, Any] = (tracker.latest_message or {}).get("metadata") or {}
    account = metadata.get("store_account")
    return str(account) if account else None


class OrderAction(KefuAction):
    """Shared by the order actions: look up, check the owner, disclose or ask."""

    async def fetch(self, dispatcher: CollectingDispatcher, message: Message,
                    order_id: str) -> Order | None:
        """The order, or ``None`` after telling the shopper why not."""
        system = self.services.orders
        try:
            order = await system.order(order_id) if system is not None else None
        except OrderSystemUnavailable as exc:
            logger.error("order %s not looked up for %s: %s", order_id,
                         message.conversation_id, exc)
            utter(dispatcher, order_replies.order_system_down(message.language))
            return None
        if system is None:
            utter(dispatcher, order_replies.order_system_down(message.language))
        elif order is None:
            utter(dispatcher, order_replies.order_not_found(order_id, message.language))
        return order

    async def disclose(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                       message: Message, order: Order) -> Events:
        """Tell the owner everything, remember they are verified, and watch the order for them.

        Watched, the order's later events (late, stuck, gift shipped…) are told to this
        conversation before the shopper asks (:mod:`orders.proactive`).
        """
        utter(dispatcher, order_replies.order_details(order, message.language, datetime.now(UTC)))
        if self.services.proactive is not None:
            await self.services.conversations.set_profile(
                message.conversation_id, language=message.language.value, channel=message.channel)
            await self.services.proactive.watch(order.order_id, message.conversation_id)
        verified = {str(v) for v in tracker.get_slot(VERIFIED_SLOT) or []} | {order.order_id}
        return [SlotSet(VERIFIED_SLOT, sorted(verified)), SlotSet(PENDING_SLOT, None),
                SlotSet(FAILURES_SLOT, None)]

    async def wrong_tail(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                         message: Message, order: Order) -> tuple[bool, Events]:
        """Count wrong digits typed for ``order``; out of tries, a person checks instead.

        One count per conversation, whichever asked (an order question or a guided flow), so
        switching between them does not buy more guesses. Returns whether the tries are used up
        (the chat was handed off) and the events.
        """
        failures = int(tracker.get_slot(FAILURES_SLOT) or 0) + 1
        left = get_settings().verify_attempts - failures
        if left > 0:
            utter(dispatcher, order_replies.wrong_tail(left, message.language))
            return False, [SlotSet(FAILURES_SLOT, failures)]
        utter(dispatcher, order_replies.verification_failed(message.language))
        plan = HandoffPlan(HandoffReason.LOW_CONFIDENCE, ORDER_GROUP, None,
                           f"订单 {order.order_id} 手机尾号验证 {failures} 次未通过")
        reset: Events = [SlotSet(PENDING_SLOT, None), SlotSet(FAILURES_SLOT, None)]
        return True, reset + await self.hand_off(dispatcher, tracker, message, plan)


class ActionOrderStatus(OrderAction):
    """Where is my order / has it shipped / my refund / my gift: answer for the owner."""

    def name(self) -> str:
        """See base class."""
        return "action_order_status"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> Events:
        """Look the order up; disclose to its owner, or ask for the phone's last four digits."""
        message = read_message(tracker)
        order_id = await self.remember_order_number(tracker, message) \
            or tracker.get_slot("order_number")
        await self.services.conversations.record_analysis(
            message.conversation_id, analysis_of(message, message.intent or "ask_order_status"))
        if not order_id:
            utter(dispatcher, order_replies.ask_order_number(message.language))
            return [SlotSet(ASKED_SLOT, True)]
        found: Events = [SlotSet("order_number", order_id), SlotSet(ASKED_SLOT, False)]
        order = await self.fetch(dispatcher, message, str(order_id))
        if order is None:
            return found
        verified = order.order_id in (tracker.get_slot(VERIFIED_SLOT) or [])
        if verified or owned_by_account(order, store_account(tracker)):
            return found + await self.disclose(dispatcher, tracker, message, order)
        utter(dispatcher, order_replies.ask_phone_tail(order.order_id, message.language))
        return [*found, SlotSet(PENDING_SLOT, order.order_id), SlotSet(FAILURES_SLOT, 0)]


class ActionVerifyOrder(OrderAction):
    """Four digits typed after the bot asked: the phone's tail, checked against the order."""

    def name(self) -> str:
        """See base class."""
        return "action_verify_order"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> Events:
        """Disclose on a match; after too many wrong tries, a person checks instead."""
        message = read_message(tracker)
        pending = tracker.get_slot(PENDING_SLOT)
        await self.services.conversations.record_analysis(
            message.conversation_id, analysis_of(message, message.intent or "give_phone_tail"))
        if not pending:
            utter(dispatcher, order_replies.no_order_to_verify(message.language))
            return []
        tail = phone_tail(message.original)
        if tail is None:
            utter(dispatcher, order_replies.ask_phone_tail(str(pending), message.language))
            return []
        order = await self.fetch(dispatcher, message, str(pending))
        if order is None:
            return [SlotSet(PENDING_SLOT, None)]
        if tail_matches(order, tail):
            logger.info("%s verified for order %s", message.conversation_id, order.order_id)
            return await self.disclose(dispatcher, tracker, message, order)
        return (await self.wrong_tail(dispatcher, tracker, message, order))[1]


class ActionCaptureOrLookUpOrderNumber(ActionCaptureOrderNumber):
    """An order number: looked up when the bot had asked for it, else kept as before.

    Served as ``action_capture_order_number`` in place of its base, so the one rule for a typed
    order number stays; the ``order_asked`` slot decides.
    """

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> Events:
        """Look the order up if the shopper was asked for its number; else keep the number."""
        if tracker.get_slot(ASKED_SLOT):
            return await ActionOrderStatus(self.services).run(dispatcher, tracker, domain)
        return await super().run(dispatcher, tracker, domain)


class ActionProactiveSubscription(KefuAction):
    """退订 stops the store's proactive order messages for this conversation; 订阅 resumes them."""

    def name(self) -> str:
        """See base class."""
        return "action_proactive_subscription"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> Events:
        """Opt out (or back in) and say so."""
        message = read_message(tracker)
        proactive = self.services.proactive
        await self.services.conversations.record_analysis(
            message.conversation_id, analysis_of(message, message.intent or "unsubscribe"))
        if message.intent == "subscribe":
            if proactive is not None:
                await proactive.opt_in(message.conversation_id)
            utter(dispatcher, order_replies.subscribed(message.language))
        else:
            if proactive is not None:
                await proactive.opt_out(message.conversation_id)
            utter(dispatcher, order_replies.unsubscribed(message.language))
        return []
