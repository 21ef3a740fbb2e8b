"""The after-sale form's actions with real Redis, the real adapter over the demo order service and
the work-order service: each kind's questions, every validation, the summary, the work order."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.aftersale import (
    ActionStartAftersale,
    ActionSubmitAftersale,
    ValidateAftersaleForm,
    photo_message,
)
from actions.aftersale_asks import (
    ActionAskAftersaleConfirm,
    ActionAskAftersaleItem,
    ActionAskAftersaleOrder,
    ActionAskAftersalePhoto,
    ActionAskAftersaleTimeSlot,
)
from actions.services import Services
from orders import aftersale
from orders import demo_data as demo
from orders.workorders import WorkOrderKind
from tests.actions.test_actions import agent_online

pytestmark = pytest.mark.redis

KEY = "demo-key"
CONV = "telegram:4242"
ADDRESS = "张三 13800138000 上海市浦东新区世纪大道100号"
TAX_ID = "91350100M000100Y43"


async def run(services: Services, action: Any, text: str, slots: dict[str, Any], *,
              extracted: dict[str, Any] | None = None, intent: str = "inform",
              entities: list[dict[str, Any]] | None = None, language: str = "zh"
              ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    latest = {"text": text, "intent": {"name": intent, "confidence": 0.9},
              "entities": entities or [],
              "metadata": {"channel": "telegram", "original_text": text}}
    events = [{"event": "action", "name": "aftersale_form"},
              *({"event": "slot", "name": k, "value": v} for k, v in (extracted or {}).items())]
    tracker = Tracker(CONV, {"language": language, **slots, **(extracted or {})}, latest, events,
                      False, None, {"name": "aftersale_form"}, "action_listen")
    dispatcher = CollectingDispatcher()
    result = await action(services).run(dispatcher, tracker, {})
    return dispatcher.messages, {e["name"]: e["value"] for e in result if e["event"] == "slot"}


async def answer(services: Services, kind: WorkOrderKind, slot: str, text: str,
                 slots: dict[str, Any] | None = None, **kwargs: Any) -> tuple[str, dict[str, Any]]:
    """Validate one answer to ``slot``: what the bot said and the slots it set."""
    messages, set_ = await run(services, ValidateAftersaleForm, text,
                               {"aftersale_kind": kind.value, "aftersale_language": "zh",
                                **(slots or {})},
                               extracted={slot: text}, **kwargs)
    assert set_.pop("language") == "zh"  # the flow's language, whatever the answer's letters
    return "\n".join(str(m["text"]) for m in messages), set_


VERIFIED_ORDER = {"aftersale_order": demo.TWO_ITEMS, "aftersale_phone_tail": "8000"}


async def test_start_forgets_earlier_answers_and_takes_the_kind_from_the_intent(
        full: Services) -> None:
    _, set_ = await run(full, ActionStartAftersale, "我要换货",
                        {"aftersale_order": demo.PAID}, intent="request_exchange")
    assert set_["aftersale_kind"] == "exchange" and set_["aftersale_order"] is None
    [asked], _ = await run(full, ActionAskAftersaleOrder, "", {"aftersale_kind": "exchange"})
    assert asked["text"].startswith("好的，帮您办理换货（约 6 步") and "取消" in asked["text"]


async def test_the_order_must_exist_fit_the_kind_and_be_the_shoppers(full: Services) -> None:
    kind = WorkOrderKind.RETURN_PICKUP
    said, set_ = await answer(full, kind, "aftersale_order", "不记得了")
    assert set_ == {"aftersale_order": None, "requested_slot": "aftersale_order"}
    assert "订单号" in said
    said, set_ = await answer(full, kind, "aftersale_order", "2026999999999")
    assert set_["aftersale_order"] is None and "没有查到订单" in said
    said, set_ = await answer(full, kind, "aftersale_order", demo.PAID)  # not delivered yet:
    assert set_["aftersale_order"] == demo.PAID and "签收" not in said  # not said before the digits
    said, set_ = await answer(full, kind, "aftersale_phone_tail", "8000",
                              {"aftersale_order": demo.PAID})
    assert set_["aftersale_order"] is None and set_["aftersale_phone_tail"] is None
    assert set_["verified_orders"] == [demo.PAID] and set_["requested_slot"] == "aftersale_order"
    assert "不能申请退货上门取件（订单需已签收）" in said
    said, set_ = await answer(full, kind, "aftersale_order", demo.PAID,
                              {"verified_orders": [demo.PAID]})  # verified: told at once
    assert set_["aftersale_order"] is None and "不能申请退货上门取件（订单需已签收）" in said
    said, set_ = await answer(full, kind, "aftersale_order", f"订单 {demo.TWO_ITEMS}")
    assert set_ == {"aftersale_order": demo.TWO_ITEMS, "order_number": demo.TWO_ITEMS,
                    "requested_slot": "aftersale_phone_tail"}
    _, set_ = await answer(full, kind, "aftersale_order", demo.TWO_ITEMS,
                           {"verified_orders": [demo.TWO_ITEMS]})
    assert set_["aftersale_phone_tail"] == "verified"
    assert set_["requested_slot"] == "aftersale_item"
    said, set_ = await answer(full, kind, "aftersale_phone_tail", "运动手环 B2",
                              {"aftersale_order": demo.TWO_ITEMS})  # not digits: no try used
    assert set_ == {"aftersale_phone_tail": None, "requested_slot": "aftersale_phone_tail"}
    assert "4 位数字" in said
    said, set_ = await answer(full, kind, "aftersale_phone_tail", "1234",
                              {"aftersale_order": demo.TWO_ITEMS})
    assert set_["aftersale_phone_tail"] is None and set_["verify_failures"] == 1
    assert "手机尾号不正确，您还可以再试 2 次" in said
    _, set_ = await answer(full, kind, "aftersale_phone_tail", "尾号8000",
                           {"aftersale_order": demo.TWO_ITEMS, "verify_failures": 1})
    assert set_["verified_orders"] == [demo.TWO_ITEMS] and set_["verify_failures"] is None


async def test_out_of_tries_the_flow_ends_and_a_person_checks(full: Services) -> None:
    await agent_online(full, "logistics")
    slots = {"aftersale_order": demo.TWO_ITEMS, "verify_failures": 2}  # wrong twice before
    said, set_ = await answer(full, WorkOrderKind.EXCHANGE, "aftersale_phone_tail", "1234", slots)
    assert "验证没有通过" in said
    assert set_["aftersale_phone_tail"] == "handed_off" and set_["requested_slot"] is None
    assert set_["verify_failures"] is None
    ticket = await full.handoff.open_ticket(CONV)
    assert ticket is not None and ticket.group == "logistics"
    assert f"订单 {demo.TWO_ITEMS} 手机尾号验证 3 次未通过" in ticket.context.summary
    # the form's end runs the submit rule: it must neither submit nor say "cancelled"
    said_after, _ = await run(full, ActionSubmitAftersale, "1234",
                              {**slots, "aftersale_kind": "exchange",
                               "aftersale_phone_tail": "handed_off"})
    assert said_after == []
    assert full.work_orders is not None and await full.work_orders.of_conversation(CONV) == []


async def test_the_item_is_offered_as_buttons_and_must_be_in_the_order(full: Services) -> None:
    [asked], _ = await run(full, ActionAskAftersaleItem, "", VERIFIED_ORDER)
    assert [b["payload"] for b in asked["buttons"]] == ["家用折叠跑步机 T1", "运动手环 B2"]
    kind = WorkOrderKind.EXCHANGE
    said, set_ = await answer(full, kind, "aftersale_item", "轻跑运动鞋 42码", VERIFIED_ORDER)
    assert set_["aftersale_item"] is None and "这个订单里没有这件商品" in said
    assert set_["requested_slot"] == "aftersale_item"
    _, set_ = await answer(full, kind, "aftersale_item", "运动手环 B2", VERIFIED_ORDER)
    assert set_ == {"aftersale_item": "运动手环 B2", "requested_slot": "aftersale_reason"}


async def test_a_photo_answers_skip_only_where_optional(full: Services,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    repair = aftersale.CATALOGUE[WorkOrderKind.REPAIR_BOOKING]
    monkeypatch.setitem(aftersale.CATALOGUE, repair.kind, replace(repair, photo_required=True))
    before = {**VERIFIED_ORDER, "aftersale_item": "运动手环 B2", "aftersale_reason": "表带断了"}
    photo = photo_message("telegram", "AgADphoto1")
    ref = "photo:telegram:AgADphoto1"
    assert photo == '/send_photo{"photo": "photo:telegram:AgADphoto1"}'
    _, set_ = await answer(full, WorkOrderKind.EXCHANGE, "aftersale_photo", photo, before,
                           intent="send_photo", entities=[{"entity": "photo", "value": ref}])
    assert set_ == {"aftersale_photo": ref, "requested_slot": "aftersale_confirm"}
    _, set_ = await answer(full, WorkOrderKind.EXCHANGE, "aftersale_photo", "跳过", before)
    assert set_["aftersale_photo"] == "skipped"
    said, set_ = await answer(full, WorkOrderKind.EXCHANGE, "aftersale_photo", "发了", before)
    assert set_["aftersale_photo"] is None and "跳过" in said
    said, set_ = await answer(full, WorkOrderKind.REPAIR_BOOKING, "aftersale_photo", "跳过",
                              before)
    assert set_["aftersale_photo"] is None and "需要一张照片" in said
    [optional], _ = await run(full, ActionAskAftersalePhoto, "", {"aftersale_kind": "exchange"})
    assert [b["title"] for b in optional["buttons"]] == ["跳过"]
    [required], _ = await run(full, ActionAskAftersalePhoto, "",
                              {"aftersale_kind": "repair_booking"})
    assert "buttons" not in required or not required["buttons"]


async def test_the_conversation_awaits_a_photo_exactly_while_it_is_asked(full: Services) -> None:
    before = {**VERIFIED_ORDER, "aftersale_item": "运动手环 B2"}
    await answer(full, WorkOrderKind.EXCHANGE, "aftersale_reason", "表带断了", before)
    assert (await full.conversations.profile(CONV))["awaiting"] == "photo"
    await answer(full, WorkOrderKind.EXCHANGE, "aftersale_photo", "跳过",
                 {**before, "aftersale_reason": "表带断了"})
    assert (await full.conversations.profile(CONV))["awaiting"] == ""


async def test_visit_slots_offered_and_a_typed_one_checked(full: Services) -> None:
    [asked], _ = await run(full, ActionAskAftersaleTimeSlot, "", {})
    offered = aftersale.offered_slots(datetime.now(UTC))
    assert [b["payload"] for b in asked["buttons"]] == [s.stored() for s in offered]
    kind = WorkOrderKind.REPAIR_BOOKING
    before = {**VERIFIED_ORDER, "aftersale_item": "家用折叠跑步机 T1", "aftersale_reason": "需要安装",
              "aftersale_photo": "photo:telegram:x", "aftersale_address": ADDRESS}
    said, set_ = await answer(full, kind, "aftersale_time_slot", "2020-01-01 上午", before)
    assert set_["aftersale_time_slot"] is None and "已经过去" in said
    said, set_ = await answer(full, kind, "aftersale_time_slot", "随便", before)
    assert set_["aftersale_time_slot"] is None and "没看懂" in said
    _, set_ = await answer(full, kind, "aftersale_time_slot", offered[1].stored(), before)
    assert set_ == {"aftersale_time_slot": offered[1].stored(),
                    "requested_slot": "aftersale_confirm"}


async def test_invoice_title_tax_id_and_email(full: Services) -> None:
    kind, order = WorkOrderKind.INVOICE_REISSUE, {"aftersale_order": demo.PAID,
                                                  "aftersale_phone_tail": "verified"}
    _, set_ = await answer(full, kind, "aftersale_invoice_title", "个人", order)
    assert set_["requested_slot"] == "aftersale_email"  # no tax id for a person
    company = {**order, "aftersale_invoice_title": "上海某某体育用品有限公司"}
    _, set_ = await answer(full, kind, "aftersale_invoice_title", "上海某某体育用品有限公司", order)
    assert set_["requested_slot"] == "aftersale_tax_id"
    said, set_ = await answer(full, kind, "aftersale_tax_id", "91350100M000100Y44", company)
    assert set_["aftersale_tax_id"] is None and "税号不正确" in said
    _, set_ = await answer(full, kind, "aftersale_tax_id", TAX_ID.lower(), company)
    assert set_["aftersale_tax_id"] == TAX_ID
    said, set_ = await answer(full, kind, "aftersale_email", "kim@", company)
    assert set_["aftersale_email"] is None and "邮箱格式不正确" in said


async def test_summary_then_one_work_order_then_cancel(full: Services) -> None:
    slots = {"aftersale_kind": "invoice_reissue", "aftersale_order": demo.PAID,
             "aftersale_phone_tail": "8000", "aftersale_invoice_title": "上海某某体育用品有限公司",
             "aftersale_tax_id": TAX_ID, "aftersale_email": "kim@example.com",
             "aftersale_reason": "抬头写错了"}
    [summary], _ = await run(full, ActionAskAftersaleConfirm, "", slots)
    assert summary["text"].splitlines() == [
        "请确认补开/重开发票申请：", f"订单：{demo.PAID}", "发票抬头：上海某某体育用品有限公司",
        f"税号：{TAX_ID}", "邮箱：kim@example.com", "原因：抬头写错了"]
    assert [b["payload"] for b in summary["buttons"]] == ["/affirm", "/deny"]
    [english], _ = await run(full, ActionAskAftersaleConfirm, "", slots, language="en")
    assert "Please confirm the invoice reissue:" in english["text"]
    confirmed = {**slots, "aftersale_confirm": True}
    [done], reset = await run(full, ActionSubmitAftersale, "/affirm", confirmed)
    assert done["text"].startswith("已提交补开/重开发票申请，工单号 IV")
    assert all(v is None for v in reset.values()) and "aftersale_kind" in reset
    [twice], _ = await run(full, ActionSubmitAftersale, "/affirm", confirmed)
    assert "之前已提交" in twice["text"]
    assert full.work_orders is not None
    [order] = await full.work_orders.of_conversation(CONV)
    assert order.kind is WorkOrderKind.INVOICE_REISSUE and order.group == "aftersale"
    assert order.fields == {"invoice_title": "上海某某体育用品有限公司", "tax_id": TAX_ID,
                            "email": "kim@example.com", "reason": "抬头写错了"}
    assert order.sla_due - order.created_at == aftersale.CATALOGUE[order.kind].sla
    [cancelled], _ = await run(full, ActionSubmitAftersale, "取消",
                               {**slots, "aftersale_kind": "exchange"}, intent="stop_flow")
    assert cancelled["text"].startswith("好的，已取消换货申请，没有提交工单")
    assert len(await full.work_orders.of_conversation(CONV)) == 1
