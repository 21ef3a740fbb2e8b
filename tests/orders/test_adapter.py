"""The HTTP adapter against a local fake of the contract, served on a real port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from orders import HttpOrderSystem, OrderSettings, OrderStatus, OrderSystemUnavailable
from orders.models import GiftStatus
from tests.helpers.fake_order_api import KEY, ORDER, FakeStore, create_app
from tests.helpers.live_server import LoopServer, serve
from tests.helpers.processes import free_port

ORDER_ID = ORDER["order_id"]


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
async def server(store: FakeStore) -> AsyncIterator[LoopServer]:
    async with serve(create_app(store)) as running:
        yield running


@pytest.fixture
async def system(server: LoopServer) -> AsyncIterator[HttpOrderSystem]:
    adapter = HttpOrderSystem(server.url, KEY, timeout=2)
    yield adapter
    await adapter.aclose()


async def test_an_order_with_its_items_tracking_and_gift(system: HttpOrderSystem) -> None:
    order = await system.order(ORDER_ID)
    assert order is not None
    assert order.status is OrderStatus.SHIPPED and order.phone_last4 == "4321"
    assert order.items[0].name == "保温杯" and order.items[0].quantity == 2
    assert order.placed_at == datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    assert order.tracking is not None and order.tracking.latest(1)[0].location == "上海"
    assert order.gift is not None and order.gift.status is GiftStatus.PENDING


async def test_each_route_of_the_contract(system: HttpOrderSystem, store: FakeStore) -> None:
    tracking = await system.tracking(ORDER_ID)
    gift = await system.gift(ORDER_ID)
    assert tracking is not None and tracking.waybill == "SF100" and len(tracking.events) == 2
    assert gift is not None and gift.name == "杯套"
    assert await system.refund(ORDER_ID) is None  # 404: no refund
    listed = await system.orders_of("acct-42")
    assert [o.order_id for o in listed] == [ORDER_ID] and listed[0].title == "保温杯"
    assert await system.orders_of("nobody") == []
    assert store.calls == [f"/orders/{ORDER_ID}/tracking", f"/orders/{ORDER_ID}/gift",
                           f"/orders/{ORDER_ID}/refund", "/shoppers/acct-42/orders",
                           "/shoppers/nobody/orders"]


async def test_unknown_order_is_none_and_ids_are_escaped(system: HttpOrderSystem,
                                                         store: FakeStore) -> None:
    assert await system.order("2026999999999") is None
    assert await system.order("../admin") is None
    assert store.calls == ["/orders/2026999999999"]  # the escaped id reached no other route


@pytest.mark.parametrize("status", [500, 503, 401, 429])
async def test_a_failing_store_is_unavailable(system: HttpOrderSystem, store: FakeStore,
                                              status: int) -> None:
    store.fail_with = status
    with pytest.raises(OrderSystemUnavailable):
        await system.order(ORDER_ID)


async def test_a_body_breaking_the_contract_is_unavailable(system: HttpOrderSystem,
                                                           store: FakeStore) -> None:
    store.body_override = {"order_id": ORDER_ID, "status": "teleported"}
    with pytest.raises(OrderSystemUnavailable, match="breaks the contract"):
        await system.order(ORDER_ID)
    store.body_override = {"nothing": []}
    with pytest.raises(OrderSystemUnavailable):
        await system.orders_of("acct-42")


async def test_wrong_key_and_no_server(server: LoopServer) -> None:
    wrong = HttpOrderSystem(server.url, "not-the-key")
    nobody = HttpOrderSystem(f"http://127.0.0.1:{free_port()}", KEY, timeout=1)
    try:
        with pytest.raises(OrderSystemUnavailable):
            await wrong.order(ORDER_ID)
        with pytest.raises(OrderSystemUnavailable, match="did not answer"):
            await nobody.order(ORDER_ID)
    finally:
        await wrong.aclose()
        await nobody.aclose()


def test_settings_build_the_adapter_or_nothing() -> None:
    assert HttpOrderSystem.from_settings(OrderSettings(url=None)) is None
    built = HttpOrderSystem.from_settings(OrderSettings(url="http://shop.test/kefu/v1/",
                                                        api_key=KEY))  # type: ignore[arg-type]
    assert isinstance(built, HttpOrderSystem)


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEFU_ORDERS_URL", "https://shop.example.com/kefu/v1")
    monkeypatch.setenv("KEFU_ORDERS_API_KEY", "k-123")
    monkeypatch.setenv("KEFU_ORDERS_TIMEOUT_SECONDS", "1.5")
    settings = OrderSettings()
    assert settings.url == "https://shop.example.com/kefu/v1" and settings.timeout_seconds == 1.5
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "k-123"
