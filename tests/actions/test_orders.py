"""The order actions with real rasa-sdk trackers, real Redis and handoff, and the real HTTP adapter
talking to the demo order service (in process, through httpx's ASGI transport)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.orders import (
    ActionCaptureOrLookUpOrderNumber,
    ActionOrderStatus,
    ActionProactiveSubscription,
    ActionVerifyOrder,
)
from actions.services import Services
from handoff.models import HandoffReason
from orders import HttpOrderSystem
from orders import demo_data as demo
from orders.proactive import ProactiveService
from tests.actions.test_actions import agent_online
from tests.helpers.processes import free_port

pytestmark = pytest.mark.redis

KEY = "demo-key"


class Shopper:
    """One conversation's turns, slots carried from action to action as Rasa does."""

    def __init__(self, services: Services, sender: str = "web:olivia", language: str = "zh",
                 account: str | None = None) -> None:
        self.services, self.sender, self.account = services, sender, account
        self.slots: dict[str, Any] = {"language": language}

    async def say(self, action: Any, text: str, intent: str) -> list[str]:
        metadata = {"channel": "web", "original_text": text}
        if self.account:
            metadata["store_account"] = self.account
        latest = {"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": [],
                  "metadata": metadata}
        tracker = Tracker(self.sender, dict(self.slots), latest, [], False, None, {},
                          "action_listen")
        dispatcher = CollectingDispatcher()
        events = await action(self.services).run(dispatcher, tracker, {})
        self.slots.update({e["name"]: e["value"] for e in events if e["event"] == "slot"})
        return [str(m["text"]) for m in dispatcher.messages]


async def test_where_is_my_order_asks_the_phone_tail_first(with_orders: Services) -> None:
    shopper = Shopper(with_orders)
    [reply] = await shopper.say(ActionOrderStatus, f"我的订单 {demo.SHIPPED} 到哪了",
                                "ask_order_status")
    assert "…2345" in reply and "后四位" in reply
    for secret in ("顺丰", "SF1420938475612", "运动鞋", "399", "派送"):
        assert secret not in reply  # nothing about the order before verification
    assert shopper.slots["order_to_verify"] == demo.SHIPPED
    assert shopper.slots["order_number"] == demo.SHIPPED
    assert (await with_orders.conversations.slots(shopper.sender))["order_number"] == demo.SHIPPED


async def test_the_right_tail_discloses_status_and_latest_tracking(with_orders: Services) -> None:
    shopper = Shopper(with_orders)
    await shopper.say(ActionOrderStatus, f"我的订单 {demo.SHIPPED} 到哪了", "ask_order_status")
    [reply] = await shopper.say(ActionVerifyOrder, "8000", "give_phone_tail")
    assert "已发货" in reply and "顺丰速运 运单号 SF1420938475612" in reply
    lines = reply.splitlines()
    assert "派送中" in lines[2] and "上海转运中心" in lines[3]  # newest first
    assert "已揽收" not in reply  # the last three scans only
    assert shopper.slots["verified_orders"] == [demo.SHIPPED]
    assert shopper.slots["order_to_verify"] is None
    # verified once, the same order is answered straight away afterwards
    [again] = await shopper.say(ActionOrderStatus, "还是这个订单，到哪了", "ask_order_status")
    assert "SF1420938475612" in again


async def test_wrong_tails_then_a_person(with_orders: Services) -> None:
    await agent_online(with_orders, "logistics")
    shopper = Shopper(with_orders)
    await shopper.say(ActionOrderStatus, f"订单 {demo.OTHERS} 到哪了", "ask_order_status")
    first = await shopper.say(ActionVerifyOrder, "8000", "give_phone_tail")
    assert "还可以再试 2 次" in first[0]
    second = await shopper.say(ActionVerifyOrder, "尾号 0000", "give_phone_tail")
    assert "1 次" in second[0] and "手机壳" not in second[0]
    third = await shopper.say(ActionVerifyOrder, "6666", "give_phone_tail")
    assert "验证没有通过" in third[0] and "SF9900112233" not in "".join(third)
    ticket = await with_orders.handoff.open_ticket(shopper.sender)
    assert ticket is not None and ticket.group == "logistics"
    assert ticket.context.reason is HandoffReason.LOW_CONFIDENCE
    assert ticket.context.slots.get("order_number") == demo.OTHERS
    assert "验证 3 次未通过" in ticket.context.summary


async def test_the_logged_in_store_account_needs_no_digits(with_orders: Services) -> None:
    owner = Shopper(with_orders, sender="web:owner", account=demo.SHOPPER)
    [reply] = await owner.say(ActionOrderStatus, f"订单 {demo.GIFT_SHIPPED} 的赠品发了吗",
                              "ask_order_status")
    assert "赠品「不粘内胆（赠品）」：已发出（圆通速递 YT5566778899）" in reply
    stranger = Shopper(with_orders, sender="web:stranger", account="other-shopper")
    [asked] = await stranger.say(ActionOrderStatus, f"订单 {demo.GIFT_SHIPPED}", "ask_order_status")
    assert "后四位" in asked and "赠品" not in asked


async def test_english_and_the_number_asked_for(with_orders: Services) -> None:
    shopper = Shopper(with_orders, language="en")
    [ask] = await shopper.say(ActionOrderStatus, "where is my order", "ask_order_status")
    assert "order number" in ask and shopper.slots["order_asked"] is True
    [verify] = await shopper.say(ActionCaptureOrLookUpOrderNumber, demo.REFUNDING,
                                 "give_order_number")
    assert "last 4 digits" in verify and shopper.slots["order_asked"] is False
    [reply] = await shopper.say(ActionVerifyOrder, "my phone ends in 8000", "give_phone_tail")
    assert "Refund of ¥129.00: approved, being paid back" in reply


async def test_unknown_order_and_no_order_system(with_orders: Services,
                                                 services: Services) -> None:
    [unknown] = await Shopper(with_orders).say(ActionOrderStatus, "订单 2026999999999 到哪了",
                                               "ask_order_status")
    assert "没有查到订单 2026999999999" in unknown
    [none] = await Shopper(services).say(ActionOrderStatus, f"订单 {demo.SHIPPED} 到哪了",
                                         "ask_order_status")
    assert "订单系统暂时查询不到" in none
    down = HttpOrderSystem(f"http://127.0.0.1:{free_port()}", KEY, timeout=1)
    try:
        [away] = await Shopper(replace(services, orders=down)).say(
            ActionOrderStatus, f"订单 {demo.SHIPPED} 到哪了", "ask_order_status")
        assert "订单系统暂时查询不到" in away
    finally:
        await down.aclose()


async def test_digits_with_no_order_waiting(with_orders: Services) -> None:
    [reply] = await Shopper(with_orders).say(ActionVerifyOrder, "8000", "give_phone_tail")
    assert "订单号" in reply


async def test_a_number_nobody_asked_for_is_only_kept(with_orders: Services) -> None:
    shopper = Shopper(with_orders)
    [noted] = await shopper.say(ActionCaptureOrLookUpOrderNumber, demo.SHIPPED, "give_order_number")
    assert noted.startswith(f"好的，已记录您的订单号 {demo.SHIPPED}")
    assert "order_to_verify" not in shopper.slots


async def test_a_verified_order_is_watched_and_unsubscribe_stops_it(with_orders: Services) -> None:
    proactive = ProactiveService(with_orders.redis, with_orders.conversations, with_orders.orders)
    services = replace(with_orders, proactive=proactive)
    shopper = Shopper(services, sender="web:watcher")
    await shopper.say(ActionOrderStatus, f"订单 {demo.DELAYED} 到哪了", "ask_order_status")
    await shopper.say(ActionVerifyOrder, "8000", "give_phone_tail")
    [sent] = await proactive.tick()
    assert (sent.conversation_id, sent.order_id) == ("web:watcher", demo.DELAYED)
    [bye] = await shopper.say(ActionProactiveSubscription, "退订", "unsubscribe")
    assert bye.startswith("已退订") and await proactive.opted_out("web:watcher")
    [back] = await shopper.say(ActionProactiveSubscription, "订阅", "subscribe")
    assert "退订" in back and not await proactive.opted_out("web:watcher")
