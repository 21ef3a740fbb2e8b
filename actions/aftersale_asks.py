"""The after-sale form's questions that are more than a fixed sentence (``action_ask_…``).

Rasa's form asks a slot with ``action_ask_<slot>`` when the domain has one: the first question
names the request, the item question offers the order's items, the photo question offers "跳过"
where the kind allows it, the visit question offers the next days' half-days, and the last one is
the summary to confirm. The other questions are plain responses in the domain.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.actions import Events, KefuAction, read_message, utter
from actions.aftersale import (
    ORDER_SLOT,
    collected,
    flow_language,
    pick,
    say,
    spec_in,
)
from actions.orders import OrderAction
from actions.replies import Reply
from kefu.language import Language
from orders import aftersale
from orders.aftersale import FIELD_LABELS, FlowField


class ActionAskAftersaleOrder(KefuAction):
    """The first question: which order, naming the request and its steps."""

    def name(self) -> str:
        """See base class."""
        return "action_ask_aftersale_order"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> Events:
        """Ask for the order number."""
        spec, lang = spec_in(tracker), flow_language(tracker)
        if spec is None:
            return []
        steps = len(spec.fields) + 3  # the order, its verification, the fields, the summary
        say(dispatcher, lang,
             f"好的，帮您办理{spec.name('zh')}（约 {steps} 步，随时可以说“取消”）。请发送订单号。",
             f"Sure, let's set up your {spec.name('en')} (about {steps} steps; say \"cancel\" "
             "any time). Please send the order number.")
        return []


class ActionAskAftersaleItem(OrderAction):
    """Which item of the order: its items as buttons."""

    def name(self) -> str:
        """See base class."""
        return "action_ask_aftersale_item"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> Events:
        """Offer the order's items."""
        message = replace(read_message(tracker), language=flow_language(tracker))
        order = await self.fetch(dispatcher, message, str(tracker.get_slot(ORDER_SLOT) or ""))
        if order is None:
            return []
        buttons = [{"title": i.name, "payload": i.name} for i in order.items]
        say(dispatcher, message.language, "是订单里的哪件商品？", "Which item of the order?",
             buttons)
        return []


class ActionAskAftersalePhoto(KefuAction):
    """A photo of the problem: sent as a picture, or skipped where the kind allows."""

    def name(self) -> str:
        """See base class."""
        return "action_ask_aftersale_photo"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> Events:
        """Ask for the photo (with a skip button when it is optional)."""
        spec, lang = spec_in(tracker), flow_language(tracker)
        if spec is None or spec.photo_required:
            say(dispatcher, lang, "请发送一张问题部位的照片（直接发图片即可）。",
                 "Please send a photo of the problem (just send the picture).")
        else:
            say(dispatcher, lang, "请发送一张商品或问题部位的照片；没有照片可以回复“跳过”。",
                 "Please send a photo of the item or the problem, or reply \"skip\".",
                 [{"title": pick(lang, "跳过", "Skip"), "payload": pick(lang, "跳过", "skip")}])
        return []


class ActionAskAftersaleTimeSlot(KefuAction):
    """When the courier or technician should come: the next days' half-days as buttons."""

    def name(self) -> str:
        """See base class."""
        return "action_ask_aftersale_time_slot"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> Events:
        """Offer the next slots; a typed one is read too."""
        lang = flow_language(tracker)
        slots = aftersale.offered_slots(datetime.now(UTC))
        buttons = [{"title": s.label(lang.value), "payload": s.stored()} for s in slots]
        say(dispatcher, lang, "请选择上门时间（也可以直接写，例如“12月8日上午”）：",
             "When should we come? Pick a slot (or write one, e.g. \"8 Dec morning\"):", buttons)
        return []


class ActionAskAftersaleConfirm(KefuAction):
    """The summary to confirm before the work order is made."""

    def name(self) -> str:
        """See base class."""
        return "action_ask_aftersale_confirm"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> Events:
        """Show every answer, with confirm / cancel buttons."""
        spec, lang = spec_in(tracker), flow_language(tracker)
        if spec is None:
            return []
        english = lang is Language.EN
        lines = [pick(lang, f"请确认{spec.name('zh')}申请：", f"Please confirm the "
                                                             f"{spec.name('en')}:"),
                 pick(lang, "订单：", "Order: ") + str(tracker.get_slot(ORDER_SLOT))]
        for key, value in collected(spec, tracker).items():
            zh, en = FIELD_LABELS[FlowField(key)]
            lines.append(f"{en}: {value}" if english else f"{zh}：{value}")
        utter(dispatcher, Reply("\n".join(lines), [
            {"title": pick(lang, "确认提交", "Confirm"), "payload": "/affirm"},
            {"title": pick(lang, "取消", "Cancel"), "payload": "/deny"}]))
        return []
