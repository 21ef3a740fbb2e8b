"""After-sale guided flows in chat that end in a work order (工单), and "我的工单进度".

Gift registration is a Rasa form (``gift_registration_form``: order, the phone's last four
digits unless the order is verified already, where to send the gift, then a summary to confirm);
:class:`ValidateGiftRegistrationForm` checks each answer as it comes, :class:`ActionAskGiftConfirm`
shows the summary, :class:`ActionSubmitGiftRegistration` records the work order
(:class:`orders.workorders.WorkOrderService`), whose every status change the shopper is told.
"""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import REQUESTED_SLOT

from actions import order_replies
from actions.actions import Events, KefuAction, Message, read_message, utter
from actions.orders import FAILURES_SLOT, VERIFIED_SLOT, OrderAction, store_account
from actions.replies import Reply, human_button
from kefu.language import Language
from kefu.orders import find_order_number
from orders.models import GiftStatus, Order
from orders.verification import owned_by_account, phone_tail, tail_matches
from orders.workorders import WorkOrderKind

logger = logging.getLogger(__name__)

FORM_SLOTS = ("gift_order", "gift_phone_tail", "gift_address", "gift_confirm")
VERIFIED = "verified"  # gift_phone_tail when the order was verified before the form asked
HANDED_OFF = "handed_off"  # gift_phone_tail when wrong digits used up the tries: a person checks
ADDRESS_CHARS = (8, 120)


def _pick(lang: Language, zh: str, en: str) -> str:
    return en if lang is Language.EN else zh


def _say(dispatcher: CollectingDispatcher, lang: Language, zh: str, en: str) -> None:
    utter(dispatcher, Reply(_pick(lang, zh, en)))


class ValidateGiftRegistrationForm(OrderAction):
    """Each answer of the gift registration checked as it arrives; a bad one is asked again."""

    def name(self) -> str:
        """See base class."""
        return "validate_gift_registration_form"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> Events:
        """Validate the slots the latest message filled."""
        message = read_message(tracker)
        events: Events = []
        for slot, value in tracker.slots_to_validate().items():
            if slot == "gift_order":
                events += await self._order(dispatcher, tracker, message, str(value or ""))
            elif slot == "gift_phone_tail":
                events += await self._tail(dispatcher, tracker, message, str(value or ""))
            elif slot == "gift_address":
                events += self._address(dispatcher, message, str(value or ""))
        return events

    async def _order(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     message: Message, text: str) -> Events:
        order_id = find_order_number(text)
        if order_id is None:
            utter(dispatcher, order_replies.ask_order_number(message.language))
            return [SlotSet("gift_order", None)]
        order = await self.fetch(dispatcher, message, order_id)
        if order is None:
            return [SlotSet("gift_order", None)]
        taken = [SlotSet("gift_order", order_id), SlotSet("order_number", order_id)]
        verified = order_id in (tracker.get_slot(VERIFIED_SLOT) or []) \
            or owned_by_account(order, store_account(tracker))
        if not verified:  # not even whether its gift has shipped before the digits
            return taken
        refused = self._no_gift_to_register(order, message.language)
        if refused:
            utter(dispatcher, refused)
            return [SlotSet("gift_order", None)]
        return [*taken, SlotSet("gift_phone_tail", VERIFIED)]

    @staticmethod
    def _no_gift_to_register(order: Order, lang: Language) -> Reply | None:
        if order.gift is None:
            return Reply(_pick(lang, f"订单 {order_id_tail(order)} 没有赠品活动，"
                                     "请换一个订单号，或转人工客服。",
                               f"Order {order_id_tail(order)} comes with no gift. Send another "
                               "order number, or talk to a person."), [human_button(lang)])
        if order.gift.status is not GiftStatus.PENDING:
            return Reply(_pick(lang, f"订单 {order_id_tail(order)} 的赠品已经发出，无需登记；"
                                     "如未收到请转人工客服。",
                               f"The gift of order {order_id_tail(order)} has shipped already; "
                               "if it has not arrived, talk to a person."), [human_button(lang)])
        return None

    async def _tail(self, dispatcher: CollectingDispatcher, tracker: Tracker, message: Message,
                    text: str) -> Events:
        if text == VERIFIED:
            return []
        order_id = str(tracker.get_slot("gift_order") or "")
        order = await self.fetch(dispatcher, message, order_id) if order_id else None
        tail = phone_tail(text)
        if order is None:
            return [SlotSet("gift_phone_tail", None)]
        if tail is None:
            utter(dispatcher, order_replies.tail_expected(message.language))
            return [SlotSet("gift_phone_tail", None)]
        if not tail_matches(order, tail):
            handed_off, events = await self.wrong_tail(dispatcher, tracker, message, order)
            # Out of tries a person checks: the form ends quietly (no question left, no submit).
            if handed_off:
                return [SlotSet("gift_phone_tail", HANDED_OFF), *events,
                        SlotSet(REQUESTED_SLOT, None)]
            return [SlotSet("gift_phone_tail", None), *events]
        verified = {str(v) for v in tracker.get_slot(VERIFIED_SLOT) or []} | {order_id}
        kept: Events = [SlotSet(VERIFIED_SLOT, sorted(verified)), SlotSet(FAILURES_SLOT, None)]
        refused = self._no_gift_to_register(order, message.language)
        if refused:  # theirs, but no gift to register
            utter(dispatcher, refused)
            return [SlotSet("gift_phone_tail", None), SlotSet("gift_order", None), *kept]
        return [SlotSet("gift_phone_tail", tail), *kept]

    @staticmethod
    def _address(dispatcher: CollectingDispatcher, message: Message, text: str) -> Events:
        text = " ".join(text.split())
        low, high = ADDRESS_CHARS
        if not low <= len(text) <= high or not any(c.isdigit() for c in text):
            _say(dispatcher, message.language,
                 "请写完整：收货人、电话和详细地址（含门牌号）。",
                 "Please give the full name, phone and street address (with the number).")
            return [SlotSet("gift_address", None)]
        return [SlotSet("gift_address", text)]


def order_id_tail(order: Order) -> str:
    """The order as named to a shopper who may not be verified yet."""
    return order_replies.masked(order.order_id)


class ActionAskGiftConfirm(OrderAction):
    """The summary to confirm before the work order is made."""

    def name(self) -> str:
        """See base class."""
        return "action_ask_gift_confirm"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> Events:
        """Show what will be registered, with confirm / cancel buttons."""
        message = read_message(tracker)
        order_id = str(tracker.get_slot("gift_order") or "")
        order = await self.fetch(dispatcher, message, order_id)
        gift = order.gift.name if order and order.gift else "—"
        lang = message.language
        text = _pick(lang, f"请确认赠品登记：\n订单：{order_id}\n赠品：{gift}\n"
                           f"收货信息：{tracker.get_slot('gift_address')}",
                     f"Please confirm the gift registration:\nOrder: {order_id}\nGift: {gift}\n"
                     f"Send to: {tracker.get_slot('gift_address')}")
        utter(dispatcher, Reply(text, [
            {"title": _pick(lang, "确认提交", "Confirm"), "payload": "/affirm"},
            {"title": _pick(lang, "取消", "Cancel"), "payload": "/deny"}]))
        return []


class ActionSubmitGiftRegistration(KefuAction):
    """The confirmed registration becomes a work order; a cancelled one is forgotten."""

    def name(self) -> str:
        """See base class."""
        return "action_submit_gift_registration"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> Events:
        """Create the work order (once, however often confirmed) and say its number."""
        message = read_message(tracker)
        lang = message.language
        reset: Events = [SlotSet(slot, None) for slot in FORM_SLOTS]
        service = self.services.work_orders
        if tracker.get_slot("gift_phone_tail") == HANDED_OFF:  # a person took over: say nothing
            return reset
        if tracker.get_slot("gift_confirm") is not True:
            _say(dispatcher, lang, "好的，已取消赠品登记。",
                 "Okay, the gift registration is cancelled.")
            return reset
        if service is None:
            utter(dispatcher, order_replies.order_system_down(lang))
            return reset
        order_id = str(tracker.get_slot("gift_order"))
        await self.services.conversations.set_profile(
            message.conversation_id, language=lang.value, channel=message.channel)
        work_order, created = await service.create(
            message.conversation_id, message.channel, WorkOrderKind.GIFT_REGISTRATION, order_id,
            {"address": str(tracker.get_slot("gift_address") or "")})
        due = order_replies.at(work_order.sla_due)
        _say(dispatcher, lang,
             f"已为您登记赠品，工单号 {work_order.id}，售后会在 {due} 前处理，进度会在这里通知您。"
             + ("" if created else "（这张工单之前已提交）"),
             f"Your gift is registered: work order {work_order.id}. The after-sales team will "
             f"handle it by {due}; you'll be told here as it moves."
             + ("" if created else " (It was submitted before.)"))
        return reset


class ActionWorkOrderProgress(KefuAction):
    """"我的工单进度": each of the conversation's work orders and where it stands."""

    def name(self) -> str:
        """See base class."""
        return "action_work_order_progress"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> Events:
        """List the conversation's work orders, newest first."""
        message = read_message(tracker)
        service = self.services.work_orders
        found = await service.of_conversation(message.conversation_id) if service else []
        if not found:
            _say(dispatcher, message.language,
                 "您还没有提交过工单。可以发送“登记赠品”“我要换货”“预约上门取件”“预约维修”"
                 "或“补开发票”来办理。",
                 "You have no work orders yet. Say \"register my gift\", \"exchange\", "
                 "\"return pickup\", \"book a repair\" or \"reissue my invoice\" to start one.")
            return []
        lines = [service.progress_line(o, message.language.value) for o in found[:5]] \
            if service else []
        utter(dispatcher, Reply("\n".join(lines)))
        return []
