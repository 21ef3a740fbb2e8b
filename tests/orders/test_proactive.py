"""Proactive order messages: which events an order shows, the templates, and the poller in real
Redis over the real adapter and the demo order service (once per event, only to conversations
that verified the order, in their language, opt-out, a daily limit, recorded in the transcript)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from kefu.conversation import ConversationStore, Role
from kefu.redis import async_client
from orders import demo_data as demo
from orders.demo import DemoOrders
from orders.proactive import (
    OrderEvent,
    ProactiveService,
    TemplateError,
    Thresholds,
    check_template,
    events_of,
)
from orders.settings import OrderSettings
from tests.helpers.demo_orders import over_http, seeded

NOW = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)
ORDERS = {o.order_id: o for o in demo.demo_orders(NOW)}


def test_the_events_each_demo_order_shows() -> None:
    shown = {order_id: events_of(order, NOW) for order_id, order in ORDERS.items()}
    assert shown[demo.DELAYED] == [OrderEvent.SHIP_DELAYED]
    assert shown[demo.STUCK] == [OrderEvent.STUCK_IN_TRANSIT]
    assert shown[demo.PRESALE] == [OrderEvent.FINAL_PAYMENT_DUE]
    assert shown[demo.GIFT_SHIPPED] == [OrderEvent.GIFT_SHIPPED]
    assert shown[demo.REFUNDED] == [OrderEvent.REFUND_COMPLETED]
    for quiet in (demo.SHIPPED, demo.PAID, demo.REFUNDING, demo.GIFT_PENDING):
        assert shown[quiet] == [], quiet
    assert events_of(ORDERS[demo.PAID], NOW + timedelta(days=2)) == [OrderEvent.SHIP_DELAYED]
    assert events_of(ORDERS[demo.PRESALE], NOW + timedelta(days=3)) == []  # window over


def test_templates_only_use_known_variables() -> None:
    check_template(OrderEvent.SHIP_DELAYED, "zh", "订单 {order_id} 晚了，抱歉")
    for bad in ("{password}", "订单 {order_id", "   ", "{order_id:>999999999}", "{order_id!r}",
                "{order_id[0]}", "{order_id.upper}", "{}", "{0}"):
        with pytest.raises(TemplateError):
            check_template(OrderEvent.SHIP_DELAYED, "zh", bad)
    with pytest.raises(TemplateError):
        check_template(OrderEvent.SHIP_DELAYED, "fr", "{order_id}")


@pytest.fixture
async def setup(redis_url: str) -> AsyncIterator[tuple[ProactiveService, ConversationStore,
                                                        DemoOrders]]:
    redis = async_client(redis_url)
    store = seeded(NOW)
    system = over_http(store)
    conversations = ConversationStore(redis)
    yield (ProactiveService(redis, conversations, system, daily_limit=2, clock=lambda: NOW),
           conversations, store)
    await system.aclose()
    await redis.aclose()


async def system_texts(conversations: ConversationStore, conv: str) -> list[str]:
    return [t.text for t in await conversations.transcript(conv) if t.role is Role.SYSTEM]


@pytest.mark.redis
async def test_a_watched_delayed_order_is_told_once(setup: tuple[ProactiveService,
                                                                 ConversationStore,
                                                                 DemoOrders]) -> None:
    service, conversations, _ = setup
    assert await service.tick() == []  # nobody watches anything yet
    await conversations.set_profile("web:amy", language="zh", channel="web")
    await service.watch(demo.DELAYED, "web:amy")
    await service.watch(demo.SHIPPED, "web:amy")  # nothing to tell about this one
    [sent] = await service.tick()
    assert (sent.conversation_id, sent.order_id, sent.event) == \
        ("web:amy", demo.DELAYED, OrderEvent.SHIP_DELAYED)
    assert await service.tick() == []  # once per event
    [text] = await system_texts(conversations, "web:amy")
    assert text.startswith(f"【订单提醒】您的订单 {demo.DELAYED} 已超过承诺的发货时间（12-05 12:00）")
    assert text.endswith("回复“退订”不再接收订单提醒。")
    [turn] = [t for t in await conversations.transcript("web:amy") if t.role is Role.SYSTEM]
    assert turn.meta == {"proactive": "ship_delayed", "order_id": demo.DELAYED}


@pytest.mark.redis
async def test_opt_out_language_limit_and_managers_wording(
        setup: tuple[ProactiveService, ConversationStore, DemoOrders]) -> None:
    service, conversations, store = setup
    await conversations.set_profile("telegram:7", language="en", channel="telegram")
    await service.templates.set(OrderEvent.GIFT_SHIPPED, "en",
                                "Good news: {gift} is on its way ({waybill}). ")
    for order_id in (demo.GIFT_SHIPPED, demo.STUCK, demo.REFUNDED):
        await service.watch(order_id, "telegram:7")
    await service.watch(demo.PRESALE, "web:quiet")
    await service.opt_out("web:quiet")
    sent = await service.tick()
    assert [s.conversation_id for s in sent] == ["telegram:7", "telegram:7"]  # 2 a day at most
    told = await system_texts(conversations, "telegram:7")
    assert told[0] == (f"[Refund] The refund of ¥259.00 for order {demo.REFUNDED} is back on "
                       "your account. Reply \"unsubscribe\" to stop these messages.")
    assert told[1] == ("Good news: 不粘内胆（赠品） is on its way (YT5566778899). "
                       "Reply \"unsubscribe\" to stop these messages.")
    assert await system_texts(conversations, "web:quiet") == []
    # back in: a new event is told again
    await service.opt_in("web:quiet")
    delayed = store.get(demo.PAID)
    assert delayed is not None
    store.replace_all([*(o for o in demo.demo_orders(NOW) if o.order_id != demo.PAID),
                       delayed.model_copy(update={"ship_by": NOW - timedelta(hours=1)})])
    await service.watch(demo.PAID, "web:quiet")
    [later] = await service.tick()
    assert (later.conversation_id, later.event) == ("web:quiet", OrderEvent.SHIP_DELAYED)


def test_the_thresholds_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEFU_ORDERS_STUCK_AFTER_DAYS", "7")
    monkeypatch.setenv("KEFU_ORDERS_SHIP_DELAY_GRACE_HOURS", "72")
    monkeypatch.setenv("KEFU_ORDERS_POLL_SECONDS", "5")
    settings = OrderSettings(_env_file=None)
    thresholds = Thresholds.from_settings(settings)
    assert thresholds == Thresholds(stuck_after=timedelta(days=7), ship_grace=timedelta(hours=72))
    assert settings.poll_seconds == 5
    # the stuck parcel has had no scan for five days, the delayed order is two days late
    assert events_of(ORDERS[demo.STUCK], NOW, thresholds) == []
    assert events_of(ORDERS[demo.DELAYED], NOW, thresholds) == []
    later = NOW + timedelta(days=3)
    assert events_of(ORDERS[demo.STUCK], later, thresholds) == [OrderEvent.STUCK_IN_TRANSIT]
    assert events_of(ORDERS[demo.DELAYED], later, thresholds) == [OrderEvent.SHIP_DELAYED]
    tight = Thresholds(stuck_after=timedelta(days=1))
    assert events_of(ORDERS[demo.SHIPPED], NOW + timedelta(days=2), tight) == \
        [OrderEvent.STUCK_IN_TRANSIT]
    for bad in ("0", "-1"):
        monkeypatch.setenv("KEFU_ORDERS_STUCK_AFTER_DAYS", bad)
        with pytest.raises(ValidationError):
            OrderSettings(_env_file=None)


@pytest.mark.redis
async def test_the_poller_uses_the_configured_thresholds(redis_url: str) -> None:
    redis = async_client(redis_url)
    # the service built from settings reads the wall clock, so the orders are seeded on it (with
    # NOW the stuck parcel's 5.5 days without a scan passed six at 16:00 UTC on NOW's day)
    store = seeded(datetime.now(UTC))
    system = over_http(store)
    conversations = ConversationStore(redis)
    settings = OrderSettings(_env_file=None, stuck_after_days=6, ship_delay_grace_hours=1)
    service = ProactiveService.from_settings(redis, conversations, system, settings)
    try:
        await service.watch(demo.STUCK, "web:bo")  # 5.5 days without a scan: not six
        await service.watch(demo.DELAYED, "web:bo")  # two days late: more than an hour
        assert [s.event for s in await service.tick()] == [OrderEvent.SHIP_DELAYED]
    finally:
        await system.aclose()
        await redis.aclose()
