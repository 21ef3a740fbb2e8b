"""The gift registration form's actions and "我的工单进度", with real Redis, the real adapter over
the demo order service, and the work-order service."""

from __future__ import annotations

from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.services import Services
from actions.workorders import (
    FORM_SLOTS,
    ActionAskGiftConfirm,
    ActionSubmitGiftRegistration,
    ActionWorkOrderProgress,
    ValidateGiftRegistrationForm,
)
from kefu.conversation import Role
from orders import demo_data as demo
from orders.workorders import WorkOrderStatus
from tests.actions.test_actions import agent_online

pytestmark = pytest.mark.redis

KEY = "demo-key"
CONV = "web:gifty"


async def run(services: Services, action: Any, text: str, slots: dict[str, Any], *,
              extracted: dict[str, Any] | None = None, intent: str = "inform",
              account: str | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    metadata = {"channel": "web", "original_text": text, **({"store_account": account} if account else {})}
    latest = {"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": [],
              "metadata": metadata}
    events = [{"event": "action", "name": "action_listen"},
              {"event": "user", "text": text, "parse_data": latest},
              *({"event": "slot", "name": k, "value": v} for k, v in (extracted or {}).items())]
    tracker = Tracker(CONV, {"language": "zh", **slots}, latest, events, False, None,
                      {"name": "gift_registration_form"}, "action_listen")
    dispatcher = CollectingDispatcher()
    result = await action(services).run(dispatcher, tracker, {})
    return dispatcher.messages, {e["name"]: e["value"] for e in result if e["event"] == "slot"}


async def validate(services: Services, text: str, slot: str,
                   slots: dict[str, Any] | None = None, **kwargs: Any
                   ) -> tuple[str, dict[str, Any]]:
    messages, set_ = await run(services, ValidateGiftRegistrationForm, text, slots or {},
                               extracted={slot: text}, **kwargs)
    return "\n".join(str(m["text"]) for m in messages), set_


async def test_the_order_must_exist_and_have_a_gift_still_to_send(full: Services) -> None:
    said, set_ = await validate(full, "不记得了", "gift_order")
    assert set_ == {"gift_order": None} and "订单号" in said
    said, set_ = await validate(full, "2026999999999", "gift_order")
    assert set_ == {"gift_order": None} and "没有查到订单" in said
    # whether an order has a gift, and whether it shipped, is said only to its verified owner
    said, set_ = await validate(full, demo.PAID, "gift_order")
    assert set_ == {"gift_order": demo.PAID, "order_number": demo.PAID} and "赠品" not in said
    mine = {"verified_orders": [demo.PAID, demo.GIFT_SHIPPED]}
    said, set_ = await validate(full, demo.PAID, "gift_order", mine)
    assert set_ == {"gift_order": None} and "没有赠品活动" in said
    said, set_ = await validate(full, demo.GIFT_SHIPPED, "gift_order", mine)
    assert set_ == {"gift_order": None} and "已经发出，无需登记" in said
    said, set_ = await validate(full, "8000", "gift_phone_tail", {"gift_order": demo.GIFT_SHIPPED})
    assert set_["gift_order"] is None and set_["gift_phone_tail"] is None
    assert set_["verified_orders"] == [demo.GIFT_SHIPPED] and "已经发出，无需登记" in said
    said, set_ = await validate(full, f"订单 {demo.GIFT_PENDING}", "gift_order")
    assert set_ == {"gift_order": demo.GIFT_PENDING, "order_number": demo.GIFT_PENDING}


async def test_a_verified_order_skips_the_phone_question(full: Services) -> None:
    _, set_ = await validate(full, demo.GIFT_PENDING, "gift_order",
                             {"verified_orders": [demo.GIFT_PENDING]})
    assert set_["gift_phone_tail"] == "verified"
    _, by_account = await validate(full, demo.GIFT_PENDING, "gift_order", account=demo.SHOPPER)
    assert by_account["gift_phone_tail"] == "verified"


async def test_the_phone_tail_and_the_address_are_checked(full: Services) -> None:
    slots = {"gift_order": demo.GIFT_PENDING}
    said, set_ = await validate(full, "确认提交", "gift_phone_tail", slots)  # not digits: no try used
    assert set_ == {"gift_phone_tail": None} and "4 位数字" in said
    said, set_ = await validate(full, "1234", "gift_phone_tail", slots)
    assert set_ == {"gift_phone_tail": None, "verify_failures": 1}
    assert "手机尾号不正确，您还可以再试 2 次" in said
    _, set_ = await validate(full, "尾号 8000", "gift_phone_tail", {**slots, "verify_failures": 1})
    assert set_ == {"gift_phone_tail": "8000", "verified_orders": [demo.GIFT_PENDING],
                    "verify_failures": None}
    said, set_ = await validate(full, "上海", "gift_address", slots)
    assert set_ == {"gift_address": None} and "请写完整" in said
    _, set_ = await validate(full, "张三  13800138000\n上海市世纪大道100号", "gift_address", slots)
    assert set_ == {"gift_address": "张三 13800138000 上海市世纪大道100号"}


async def test_out_of_tries_the_form_ends_and_a_person_checks(full: Services) -> None:
    await agent_online(full, "logistics")
    slots = {"gift_order": demo.GIFT_PENDING, "verify_failures": 2}  # wrong twice before
    said, set_ = await validate(full, "1234", "gift_phone_tail", slots)
    assert "验证没有通过" in said
    assert set_["gift_phone_tail"] == "handed_off" and set_["requested_slot"] is None
    assert set_["verify_failures"] is None
    ticket = await full.handoff.open_ticket(CONV)
    assert ticket is not None and ticket.group == "logistics"
    assert f"订单 {demo.GIFT_PENDING} 手机尾号验证 3 次未通过" in ticket.context.summary
    # the form's end runs the submit rule: it must neither register nor say "cancelled"
    said_after, reset = await run(full, ActionSubmitGiftRegistration, "1234",
                                  {**slots, "gift_phone_tail": "handed_off"})
    assert said_after == [] and reset == dict.fromkeys(FORM_SLOTS)
    assert full.work_orders is not None and await full.work_orders.of_conversation(CONV) == []


async def test_summary_submit_once_and_progress(full: Services) -> None:
    slots = {"gift_order": demo.GIFT_PENDING, "gift_phone_tail": "8000",
             "gift_address": "张三 13800138000 上海市世纪大道100号"}
    [summary], _ = await run(full, ActionAskGiftConfirm, "", slots)
    assert summary["text"].splitlines() == [
        "请确认赠品登记：", f"订单：{demo.GIFT_PENDING}", "赠品：保温杯（满减赠品）",
        "收货信息：张三 13800138000 上海市世纪大道100号"]
    assert [b["payload"] for b in summary["buttons"]] == ["/affirm", "/deny"]
    confirmed = {**slots, "gift_confirm": True}
    [done], reset = await run(full, ActionSubmitGiftRegistration, "/affirm", confirmed)
    assert done["text"].startswith("已为您登记赠品，工单号 GR")
    assert reset == dict.fromkeys(("gift_order", "gift_phone_tail", "gift_address", "gift_confirm"))
    [twice], _ = await run(full, ActionSubmitGiftRegistration, "/affirm", confirmed)
    assert "之前已提交" in twice["text"]
    assert full.work_orders is not None
    [order] = await full.work_orders.of_conversation(CONV)
    assert order.status is WorkOrderStatus.OPEN and order.order_id == demo.GIFT_PENDING
    assert order.fields == {"address": "张三 13800138000 上海市世纪大道100号"}
    await full.work_orders.close(order.id, "kim", "已补发")
    [progress], _ = await run(full, ActionWorkOrderProgress, "我的工单进度", {})
    assert progress["text"] == f"工单 {order.id}（赠品登记，订单 {demo.GIFT_PENDING}）：已完成"
    told = [t.text for t in await full.conversations.transcript(CONV) if t.role is Role.SYSTEM]
    assert told == [f"工单 {order.id}（赠品登记，订单 {demo.GIFT_PENDING}）：已完成。处理说明：已补发"]


async def test_cancelled_and_nothing_yet(full: Services) -> None:
    [cancelled], reset = await run(full, ActionSubmitGiftRegistration, "/deny",
                                   {"gift_order": demo.GIFT_PENDING, "gift_confirm": False})
    assert cancelled["text"] == "好的，已取消赠品登记。" and reset["gift_order"] is None
    assert full.work_orders is not None and await full.work_orders.of_conversation(CONV) == []
    [none], _ = await run(full, ActionWorkOrderProgress, "我的工单进度", {})
    assert none["text"].startswith("您还没有提交过工单")
