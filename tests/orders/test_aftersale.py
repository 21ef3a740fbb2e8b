"""The after-sale catalogue and its validators (pure Python)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from orders import aftersale
from orders import demo_data as demo
from orders.aftersale import CATALOGUE, FlowField, SlotProblem, TimeSlot, WorkOrderKind

NOW = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai, a Monday
ORDERS = {o.order_id: o for o in demo.demo_orders(NOW)}


def test_every_kind_has_a_row_with_a_group_an_sla_and_unique_prefix() -> None:
    assert set(CATALOGUE) == set(WorkOrderKind)
    assert len({s.prefix for s in CATALOGUE.values()}) == len(CATALOGUE)
    assert {s.group for s in CATALOGUE.values()} <= {"presale", "aftersale", "logistics"}
    assert all(timedelta(hours=1) <= s.sla <= timedelta(days=7) for s in CATALOGUE.values())
    exchange = aftersale.spec_of("exchange")
    assert exchange.name("zh") == "换货" and exchange.name("en") == "exchange"
    assert aftersale.spec_of(WorkOrderKind.RETURN_PICKUP).fields[-2:] == (
        FlowField.ADDRESS, FlowField.TIME_SLOT)
    with pytest.raises(ValueError):
        aftersale.spec_of("teleport")


def test_fields_to_ask_follow_the_answers() -> None:
    invoice = CATALOGUE[WorkOrderKind.INVOICE_REISSUE]
    assert aftersale.fields_to_ask(invoice, {}) == [
        FlowField.INVOICE_TITLE, FlowField.TAX_ID, FlowField.EMAIL, FlowField.REASON]
    personal = {FlowField.INVOICE_TITLE: "个人"}
    assert aftersale.fields_to_ask(invoice, personal) == [FlowField.EMAIL, FlowField.REASON]
    company = {FlowField.INVOICE_TITLE: "上海某某体育用品有限公司"}
    assert aftersale.fields_to_ask(invoice, company)[0] is FlowField.TAX_ID


def test_which_orders_a_kind_applies_to() -> None:
    received, paid = ORDERS[demo.TWO_ITEMS], ORDERS[demo.PAID]
    for kind in (WorkOrderKind.EXCHANGE, WorkOrderKind.RETURN_PICKUP,
                 WorkOrderKind.REPAIR_BOOKING):
        assert aftersale.applies_to(CATALOGUE[kind], received)
        assert not aftersale.applies_to(CATALOGUE[kind], paid)
    invoice = CATALOGUE[WorkOrderKind.INVOICE_REISSUE]
    assert aftersale.applies_to(invoice, paid)
    assert not aftersale.applies_to(invoice, ORDERS[demo.REFUNDED])


def test_the_item_must_be_one_of_the_orders() -> None:
    order = ORDERS[demo.TWO_ITEMS]
    assert aftersale.pick_item(order, "家用折叠跑步机 T1") == "家用折叠跑步机 T1"
    assert aftersale.pick_item(order, "band-b2") == "运动手环 B2"
    assert aftersale.pick_item(order, "手环") == "运动手环 B2"
    assert aftersale.pick_item(order, "2") == "运动手环 B2"
    assert aftersale.pick_item(order, "轻跑运动鞋 42码") is None  # another order's
    assert aftersale.pick_item(order, "3") is None


def test_text_validators() -> None:
    assert aftersale.valid_reason("  尺码 偏小 ") == "尺码 偏小"
    assert aftersale.valid_reason("小") is None
    assert aftersale.valid_address("上海") is None
    assert aftersale.valid_address("张三 13800138000 上海市世纪大道100号")
    assert aftersale.valid_invoice_title("个人") == "个人"
    assert aftersale.valid_invoice_title("Personal") == "个人"
    assert aftersale.valid_invoice_title("12345") is None
    assert aftersale.valid_email("kim@example.com") == "kim@example.com"
    for bad in ("kim@", "kim.example.com", "kim@example", "a b@example.com"):
        assert aftersale.valid_email(bad) is None


def test_tax_ids_are_unified_social_credit_codes_with_their_check_character() -> None:
    assert aftersale.valid_tax_id("91350100M000100Y43") == "91350100M000100Y43"
    assert aftersale.valid_tax_id("9135 0100 M000 100Y 43") == "91350100M000100Y43"
    assert aftersale.valid_tax_id("91350100m000100y43") == "91350100M000100Y43"
    assert aftersale.valid_tax_id("91350100M000100Y44") is None  # check character wrong
    assert aftersale.valid_tax_id("91350100M000100Y4") is None  # too short
    assert aftersale.valid_tax_id("91350100M000100I43") is None  # I is never used


def test_photo_answers_and_skipping() -> None:
    assert aftersale.photo_ref("photo:telegram:AgAD123") == "photo:telegram:AgAD123"
    assert aftersale.photo_ref("photo:") is None and aftersale.photo_ref("一张图") is None
    assert aftersale.is_skip("跳过") and aftersale.is_skip(" Skip. ")
    assert not aftersale.is_skip("屏幕裂了")
    assert not any(spec.photo_required for spec in CATALOGUE.values())  # the web chat has none


def test_offered_slots_are_the_next_three_days_half_days() -> None:
    slots = aftersale.offered_slots(NOW)
    assert [s.stored() for s in slots[:2]] == ["2026-12-08 上午 09:00-12:00",
                                               "2026-12-08 下午 14:00-18:00"]
    assert len(slots) == 6 and slots[-1].day == date(2026, 12, 10)
    assert slots[0].label("zh") == "12月08日（周二）上午 09:00-12:00"
    assert slots[0].label("en") == "Tue 08 Dec morning 09:00-12:00"


@pytest.mark.parametrize("text", ["2026-12-08 上午 09:00-12:00", "12月8日上午", "12/8 上午",
                                  "明天上午", "tomorrow morning", "Tue 08 Dec morning 09:00-12:00",
                                  "12月08日（周二）上午 09:00-12:00"])
def test_a_typed_slot_is_read(text: str) -> None:
    assert aftersale.read_slot(text, NOW) == TimeSlot(date(2026, 12, 8), aftersale.HALF_DAYS[0])


def test_slots_refused_with_their_reason() -> None:
    assert aftersale.read_slot("12月1日上午", NOW) is SlotProblem.PAST
    assert aftersale.read_slot("今天上午", NOW) is SlotProblem.PAST
    assert aftersale.read_slot("今天下午", NOW) is SlotProblem.TOO_SOON
    assert aftersale.read_slot("12月30日下午", NOW) is SlotProblem.TOO_FAR
    assert aftersale.read_slot("下周吧", NOW) is SlotProblem.UNREADABLE
    assert aftersale.read_slot("12月8日", NOW) is SlotProblem.UNREADABLE  # which half-day?
    assert aftersale.read_slot("2月30日上午", NOW) is SlotProblem.UNREADABLE
    assert aftersale.read_slot("1月3日上午", NOW) is SlotProblem.TOO_FAR  # next January
