"""The after-sale guided flows in chat (换货, 退货上门取件, 维修/安装预约, 补开/重开发票): one form.

Every kind is a row of :data:`orders.aftersale.CATALOGUE`; one Rasa form, ``aftersale_form``,
serves them all. :class:`ActionStartAftersale` (the rule's first step) forgets any earlier
answers and sets ``aftersale_kind`` from the intent; :class:`ValidateAftersaleForm` checks each
answer and decides the next question from the kind's fields (Rasa's dynamic form: the validation
action sets ``requested_slot``, as rasa-sdk's ``FormValidationAction.required_slots`` would;
kefu's actions never get the domain, so the list is computed here). The order comes first and
must be the shopper's (verified earlier in the conversation, by the store account, or by the
phone's last four digits now). The questions that need the order or the clock (the order's
items, the next days' visit slots) and the summary are actions of :mod:`actions.aftersale_asks`.
:class:`ActionSubmitAftersale` records the confirmed work order, or says the flow is cancelled.

Photos: while the form asks for one, the conversation's profile says ``awaiting=photo`` and the
channels' attachment desk (``bot/channels/attachments.py``) sends a photo to Rasa as
:func:`photo_message` instead of refusing it; the work order keeps its reference.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import order_replies
from actions.actions import Events, KefuAction, Message, read_message, utter
from actions.orders import FAILURES_SLOT, VERIFIED_SLOT, OrderAction, store_account
from actions.replies import Reply, human_button
from kefu.language import Language, language_of
from kefu.orders import find_order_number
from orders import aftersale
from orders.aftersale import FlowField, KindSpec, SlotProblem, WorkOrderKind
from orders.models import Order
from orders.verification import owned_by_account, phone_tail, tail_matches

logger = logging.getLogger(__name__)

REQUESTED_SLOT = "requested_slot"
KIND_SLOT = "aftersale_kind"
LANGUAGE_SLOT = "aftersale_language"  # the flow's language, kept while codes and emails are typed
ORDER_SLOT = "aftersale_order"
TAIL_SLOT = "aftersale_phone_tail"
CONFIRM_SLOT = "aftersale_confirm"
FIELD_SLOTS = {f: f"aftersale_{f.value}" for f in FlowField}
ALL_SLOTS = (KIND_SLOT, LANGUAGE_SLOT, ORDER_SLOT, TAIL_SLOT, *FIELD_SLOTS.values(), CONFIRM_SLOT)
VERIFIED = "verified"  # the phone tail slot when the order was verified before the form asked
HANDED_OFF = "handed_off"  # the phone tail slot once wrong digits used up the tries
SKIPPED = "skipped"  # an optional photo the shopper skipped
AWAITING = "awaiting"  # conversation profile field: "photo" while the form waits for one
PHOTO_INTENT = "send_photo"
INTENT_KINDS = {
    "request_exchange": WorkOrderKind.EXCHANGE,
    "request_return_pickup": WorkOrderKind.RETURN_PICKUP,
    "request_repair": WorkOrderKind.REPAIR_BOOKING,
    "request_invoice": WorkOrderKind.INVOICE_REISSUE,
}


def photo_message(channel: str, file_id: str) -> str:
    """The Rasa message a photo becomes while the form waits for one (intent and entity)."""
    ref = f"{aftersale.PHOTO_PREFIX}{channel}:{file_id}"
    return f"/{PHOTO_INTENT}{json.dumps({'photo': ref}, ensure_ascii=False)}"


def pick(lang: Language, zh: str, en: str) -> str:
    """The text in the flow's language."""
    return en if lang is Language.EN else zh


def say(dispatcher: CollectingDispatcher, lang: Language, zh: str, en: str,
         buttons: list[dict[str, str]] | None = None) -> None:
    """Say one line in the flow's language, with its buttons."""
    utter(dispatcher, Reply(pick(lang, zh, en), buttons or []))


def flow_language(tracker: Tracker) -> Language:
    """The language the flow started in.

    A tax id, an email or a slot typed in Latin letters does not turn a Chinese flow English.
    """
    started = tracker.get_slot(LANGUAGE_SLOT)
    return language_of(started) if started else read_message(tracker).language


def spec_in(tracker: Tracker) -> KindSpec | None:
    """The catalogue row of the flow under way, if any."""
    try:
        return aftersale.spec_of(str(tracker.get_slot(KIND_SLOT)))
    except (KeyError, ValueError):
        return None


def next_slot(spec: KindSpec, values: dict[str, Any]) -> str | None:
    """The next question of ``spec``'s flow given the slot ``values`` (``None``: all answered)."""
    for slot in (ORDER_SLOT, TAIL_SLOT):
        if values.get(slot) is None:
            return slot
    answers = {f: values.get(s) for f, s in FIELD_SLOTS.items()}
    missing = aftersale.fields_to_ask(spec, answers)
    if missing:
        return FIELD_SLOTS[missing[0]]
    return CONFIRM_SLOT if values.get(CONFIRM_SLOT) is None else None


def collected(spec: KindSpec, tracker: Tracker) -> dict[str, str]:
    """The work order's fields: every answered field of the kind (a skipped photo left out)."""
    fields = {}
    for f in spec.fields:
        value = tracker.get_slot(FIELD_SLOTS[f])
        if value is not None and value != SKIPPED:
            fields[f.value] = str(value)
    return fields


class ActionStartAftersale(KefuAction):
    """A new after-sale request: earlier answers forgotten, the kind taken from the intent."""

    def name(self) -> str:
        """See base class."""
        return "action_start_aftersale"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> Events:
        """Reset the form's slots and set the kind."""
        message = read_message(tracker)
        kind = INTENT_KINDS.get(message.intent or "")
        return [*(SlotSet(slot, None) for slot in ALL_SLOTS),
                SlotSet(KIND_SLOT, kind.value if kind else None),
                SlotSet(LANGUAGE_SLOT, message.language.value)]


class ValidateAftersaleForm(OrderAction):
    """Each answer checked as it arrives; then the next question the kind needs."""

    def name(self) -> str:
        """See base class."""
        return "validate_aftersale_form"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> Events:
        """Validate the slots the latest message filled and choose the next one to ask."""
        spec = spec_in(tracker)
        if spec is None:
            return [SlotSet(REQUESTED_SLOT, None)]
        message = replace(read_message(tracker), language=flow_language(tracker))
        values: dict[str, Any] = dict(tracker.slots)
        events: Events = []
        for slot, value in tracker.slots_to_validate().items():
            found = await self._validate(dispatcher, tracker, message, spec, slot, value)
            events += found
            values.update({e["name"]: e["value"] for e in found if e.get("event") == "slot"})
        upcoming = None if values.get(TAIL_SLOT) == HANDED_OFF else next_slot(spec, values)
        await self.services.conversations.set_profile(
            message.conversation_id,
            **{AWAITING: "photo" if upcoming == FIELD_SLOTS[FlowField.PHOTO] else ""})
        # Only beside an answer: with nothing extracted (转人工, a complaint) the form must be
        # rejected so the rules hand off, and any other slot set here would count as an answer.
        kept: Events = [SlotSet("language", message.language.value)] if events else []
        return [*events, *kept, SlotSet(REQUESTED_SLOT, upcoming)]

    async def _validate(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                        message: Message, spec: KindSpec, slot: str, value: Any) -> Events:
        text = str(value or "")
        if text and text == message.text:  # from_text: keep what was typed, not NLU's folding
            text = message.original
        if slot == ORDER_SLOT:
            return await self._order(dispatcher, tracker, message, spec, text)
        if slot == TAIL_SLOT:
            return await self._tail(dispatcher, tracker, message, spec, text)
        if slot == FIELD_SLOTS[FlowField.ITEM]:
            return await self._item(dispatcher, tracker, message, text)
        if slot == FIELD_SLOTS[FlowField.PHOTO]:
            return self._photo(dispatcher, tracker, message, spec, text)
        if slot == FIELD_SLOTS[FlowField.TIME_SLOT]:
            return self._time_slot(dispatcher, message, text)
        field = next((f for f, s in FIELD_SLOTS.items() if s == slot), None)
        if field is None or field not in _TEXT_CHECKS:
            return []
        check, (zh, en) = _TEXT_CHECKS[field]
        kept = check(text)
        if kept is None:
            say(dispatcher, message.language, zh, en)
        return [SlotSet(slot, kept)]

    async def _order(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     message: Message, spec: KindSpec, text: str) -> Events:
        order_id = find_order_number(text)
        if order_id is None:
            utter(dispatcher, order_replies.ask_order_number(message.language))
            return [SlotSet(ORDER_SLOT, None)]
        order = await self.fetch(dispatcher, message, order_id)
        if order is None:
            return [SlotSet(ORDER_SLOT, None)]
        taken = [SlotSet(ORDER_SLOT, order_id), SlotSet("order_number", order_id)]
        verified = order_id in (tracker.get_slot(VERIFIED_SLOT) or []) \
            or owned_by_account(order, store_account(tracker))
        if not verified:  # not even whether the order fits the request before the digits
            return taken
        if not self._fits(dispatcher, message, spec, order):
            return [SlotSet(ORDER_SLOT, None)]
        return [*taken, SlotSet(TAIL_SLOT, VERIFIED)]

    @staticmethod
    def _fits(dispatcher: CollectingDispatcher, message: Message, spec: KindSpec,
              order: Order) -> bool:
        """The kind applies to the (verified) order; if not, the shopper is told why."""
        if aftersale.applies_to(spec, order):
            return True
        lang, number = message.language, order_replies.masked(order.order_id)
        say(dispatcher, lang,
             f"订单 {number} 不能申请{spec.name('zh')}"
             f"（{spec.requirement[0]}）。请换一个订单号，或转人工客服。",
             f"Order {number} can't have a {spec.name('en')} "
             f"({spec.requirement[1]}). Send another order number, or talk to a person.",
             [human_button(lang)])
        return False

    async def _tail(self, dispatcher: CollectingDispatcher, tracker: Tracker, message: Message,
                    spec: KindSpec, text: str) -> Events:
        if text == VERIFIED:
            return []
        order = await self._the_order(dispatcher, tracker, message)
        tail = phone_tail(text)
        if order is None:
            return [SlotSet(TAIL_SLOT, None)]
        if tail is None:
            utter(dispatcher, order_replies.tail_expected(message.language))
            return [SlotSet(TAIL_SLOT, None)]
        if not tail_matches(order, tail):
            handed_off, events = await self.wrong_tail(dispatcher, tracker, message, order)
            # Out of tries a person checks: the flow ends quietly (no question left, no submit).
            return [SlotSet(TAIL_SLOT, HANDED_OFF if handed_off else None), *events]
        verified = {str(v) for v in tracker.get_slot(VERIFIED_SLOT) or []} | {order.order_id}
        kept: Events = [SlotSet(VERIFIED_SLOT, sorted(verified)), SlotSet(FAILURES_SLOT, None)]
        if not self._fits(dispatcher, message, spec, order):  # theirs, but not for this request
            return [SlotSet(TAIL_SLOT, None), SlotSet(ORDER_SLOT, None), *kept]
        return [SlotSet(TAIL_SLOT, tail), *kept]

    async def _the_order(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                         message: Message) -> Order | None:
        order_id = str(tracker.get_slot(ORDER_SLOT) or "")
        return await self.fetch(dispatcher, message, order_id) if order_id else None

    async def _item(self, dispatcher: CollectingDispatcher, tracker: Tracker, message: Message,
                    text: str) -> Events:
        order = await self._the_order(dispatcher, tracker, message)
        item = aftersale.pick_item(order, text) if order else None
        if item is None:
            say(dispatcher, message.language, "这个订单里没有这件商品，请从订单的商品里选一件。",
                 "That item isn't in this order. Please pick one of the order's items.")
        return [SlotSet(FIELD_SLOTS[FlowField.ITEM], item)]

    @staticmethod
    def _photo(dispatcher: CollectingDispatcher, tracker: Tracker, message: Message,
               spec: KindSpec, text: str) -> Events:
        slot = FIELD_SLOTS[FlowField.PHOTO]
        if message.intent == PHOTO_INTENT:
            ref = next(tracker.get_latest_entity_values("photo"), None)
            kept = aftersale.photo_ref(str(ref or text))
            if kept is not None:
                return [SlotSet(slot, kept)]
        if not spec.photo_required and aftersale.is_skip(text):
            return [SlotSet(slot, SKIPPED)]
        lang = message.language
        if spec.photo_required:
            say(dispatcher, lang, "这一步需要一张照片，请直接发送图片。",
                 "This step needs a photo: please send a picture.")
        else:
            say(dispatcher, lang, "请直接发送图片，或回复“跳过”。",
                 "Please send a picture, or reply \"skip\".")
        return [SlotSet(slot, None)]

    @staticmethod
    def _time_slot(dispatcher: CollectingDispatcher, message: Message, text: str) -> Events:
        slot = FIELD_SLOTS[FlowField.TIME_SLOT]
        found = aftersale.read_slot(text, datetime.now(UTC))
        if isinstance(found, aftersale.TimeSlot):
            return [SlotSet(slot, found.stored())]
        zh, en = _SLOT_PROBLEMS[found]
        say(dispatcher, message.language, zh, en)
        return [SlotSet(slot, None)]


_TEXT_CHECKS = {
    FlowField.REASON: (aftersale.valid_reason, (
        "请用一句话说明原因或问题（例如：尺码偏小、屏幕不亮）。",
        "Please say in a few words why, or what is wrong.")),
    FlowField.ADDRESS: (aftersale.valid_address, ("请写完整：联系人、电话和详细地址（含门牌号）。",
                                              "Please give the name, phone and street address "
                                              "(with the number).")),
    FlowField.INVOICE_TITLE: (aftersale.valid_invoice_title, (
        "请发送发票抬头：公司全称，或“个人”。",
        "Please send the invoice title: the company's full name, or \"personal\".")),
    FlowField.TAX_ID: (aftersale.valid_tax_id, (
        "税号不正确：应为 18 位统一社会信用代码，请核对后重新发送。",
        "That tax id is not valid: it is the 18-character unified social credit code. "
        "Please check it.")),
    FlowField.EMAIL: (aftersale.valid_email, (
        "邮箱格式不正确，请重新发送（例如 name@example.com）。",
        "That email address doesn't look right (e.g. name@example.com).")),
}
_SLOT_PROBLEMS = {
    SlotProblem.UNREADABLE: ("没看懂这个时间，请点选下面的时段，或写成“12月8日上午”。",
                             "I couldn't read that time. Pick a slot below, or write e.g. "
                             "\"8 Dec morning\"."),
    SlotProblem.PAST: ("这个时间已经过去了，请选择之后的时段。",
                       "That time has passed. Please choose a later slot."),
    SlotProblem.TOO_SOON: ("上门需要提前一天预约，请选择明天及以后的时段。",
                           "A visit needs a day's notice: please choose tomorrow or later."),
    SlotProblem.TOO_FAR: (f"只能预约 {aftersale.BOOKABLE_DAYS} 天内的时段，请选近一些的时间。",
                          f"Visits can be booked up to {aftersale.BOOKABLE_DAYS} days ahead. "
                          "Please choose an earlier slot."),
}


class ActionSubmitAftersale(KefuAction):
    """The confirmed request becomes a work order; a cancelled one is forgotten, politely."""

    def name(self) -> str:
        """See base class."""
        return "action_submit_aftersale"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> Events:
        """Create the work order (once, however often confirmed) and say its number."""
        message = replace(read_message(tracker), language=flow_language(tracker))
        lang, spec = message.language, spec_in(tracker)
        reset: Events = [SlotSet(slot, None) for slot in ALL_SLOTS]
        await self.services.conversations.set_profile(
            message.conversation_id, language=lang.value, channel=message.channel,
            **{AWAITING: ""})
        if spec is None or tracker.get_slot(TAIL_SLOT) == HANDED_OFF:  # a person took over
            return reset
        if tracker.get_slot(CONFIRM_SLOT) is not True:
            say(dispatcher, lang,
                 f"好的，已取消{spec.name('zh')}申请，没有提交工单。还有什么可以帮您？",
                 f"Okay, the {spec.name('en')} is cancelled; nothing was submitted. Anything else?")
            return reset
        service = self.services.work_orders
        if service is None:
            utter(dispatcher, order_replies.order_system_down(lang))
            return reset
        work_order, created = await service.create(
            message.conversation_id, message.channel, spec.kind,
            str(tracker.get_slot(ORDER_SLOT)), collected(spec, tracker))
        due = order_replies.at(work_order.sla_due)
        say(dispatcher, lang,
             f"已提交{spec.name('zh')}申请，工单号 {work_order.id}，会在 {due} 前处理，"
             "进度会在这里通知您；也可以随时发送“我的工单进度”查看。"
             + ("" if created else "（这张工单之前已提交）"),
             f"Your {spec.name('en')} is submitted: work order {work_order.id}. It will be "
             f"handled by {due}; you'll be told here as it moves, or ask \"work order status\"."
             + ("" if created else " (It was submitted before.)"))
        logger.info("%s: %s work order %s", message.conversation_id, spec.kind.value,
                    work_order.id)
        return reset
