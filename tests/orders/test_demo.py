"""The demo order service implements the contract: every route of openapi.yaml, bodies that
fit its schemas, the key required; and its orders cover what shoppers ask about."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from orders import HttpOrderSystem, OrderStatus
from orders import demo_data as demo
from orders.demo import DemoOrders, create_app, seed
from orders.models import GiftStatus, RefundStatus
from tests.helpers.live_server import LoopServer, serve

OPENAPI = Path(__file__).resolve().parents[2] / "orders" / "openapi.yaml"
KEY = "demo-key"
NOW = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture
def orders(tmp_path: Path) -> DemoOrders:
    store = DemoOrders(tmp_path / "demo.sqlite")
    seed(store, NOW)
    return store


@pytest.fixture
async def server(orders: DemoOrders) -> AsyncIterator[LoopServer]:
    async with serve(create_app(orders, KEY)) as running:
        yield running


def _check(value: Any, schema: dict[str, Any], components: dict[str, Any], where: str) -> None:
    """A small JSON-schema check of what the document uses (ref, oneOf, type, enum, required)."""
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    if "oneOf" in schema:
        errors = []
        for option in schema["oneOf"]:
            try:
                _check(value, option, components, where)
                return
            except AssertionError as exc:
                errors.append(str(exc))
        raise AssertionError(f"{where}: fits no option: {errors}")
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds] if kinds else []
    python = {"object": dict, "array": list, "string": str, "integer": int, "null": type(None)}
    assert not kinds or any(isinstance(value, python[k]) for k in kinds), f"{where}: {value!r}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if isinstance(value, str) and "pattern" in schema:
        assert re.match(schema["pattern"], value), f"{where}: {value!r}"
    if isinstance(value, str) and schema.get("format") == "date-time":
        assert datetime.fromisoformat(value).tzinfo is not None, f"{where}: {value!r}"
    if isinstance(value, dict):
        missing = set(schema.get("required", [])) - set(value)
        assert not missing, f"{where}: missing {missing}"
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                _check(value[name], sub, components, f"{where}.{name}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            _check(item, schema["items"], components, f"{where}[{i}]")


def test_the_demo_serves_every_route_of_the_document(document: dict[str, Any],
                                                     orders: DemoOrders) -> None:
    served = {getattr(r, "path", "") for r in create_app(orders, KEY).routes}
    assert set(document["paths"]) <= served


async def test_every_answer_fits_the_documented_schema(document: dict[str, Any],
                                                       server: LoopServer) -> None:
    components = document["components"]["schemas"]
    checked = 0
    async with httpx.AsyncClient(base_url=server.url,
                                 headers={"Authorization": f"Bearer {KEY}"}) as client:
        for order in demo.demo_orders(NOW):
            for path, spec in document["paths"].items():
                url = path.replace("{order_id}", order.order_id).replace(
                    "{shopper_id}", order.shopper_id)
                response = await client.get(url)
                documented = spec["get"]["responses"]
                assert str(response.status_code) in documented, url
                if response.status_code == 200:
                    schema = documented["200"]["content"]["application/json"]["schema"]
                    _check(response.json(), schema, components, url)
                    checked += 1
    assert checked >= 25  # orders, lists, and every tracking, refund and gift there is


async def test_the_key_is_required(server: LoopServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get(f"/orders/{demo.SHIPPED}")).status_code == 401
        wrong = await client.get(f"/orders/{demo.SHIPPED}", headers={"Authorization": "Bearer x"})
        assert wrong.status_code == 401


async def test_the_adapter_reads_every_kind_of_demo_order(server: LoopServer) -> None:
    system = HttpOrderSystem(server.url, KEY)
    try:
        shipped = await system.order(demo.SHIPPED)
        assert shipped is not None and shipped.tracking is not None
        assert "派送" in shipped.tracking.latest(1)[0].description
        delayed = await system.order(demo.DELAYED)
        assert delayed is not None and delayed.ship_delayed(NOW)
        paid = await system.order(demo.PAID)
        assert paid is not None and paid.status is OrderStatus.PAID
        assert not paid.ship_delayed(NOW)
        presale = await system.order(demo.PRESALE)
        assert presale is not None and presale.status is OrderStatus.DEPOSIT_PAID
        assert presale.final_payment_from is not None and presale.final_payment_until is not None
        assert presale.final_payment_from < NOW < presale.final_payment_until
        refund = await system.refund(demo.REFUNDED)
        assert refund is not None and refund.status is RefundStatus.COMPLETED
        refunding = await system.refund(demo.REFUNDING)
        assert refunding is not None and refunding.status is RefundStatus.APPROVED
        pending, sent = await system.gift(demo.GIFT_PENDING), await system.gift(demo.GIFT_SHIPPED)
        assert pending is not None and pending.status is GiftStatus.PENDING
        assert sent is not None and sent.status is GiftStatus.SHIPPED and sent.tracking
        stuck = await system.tracking(demo.STUCK)
        assert stuck is not None and stuck.stuck(NOW)
        assert shipped.tracking is not None and not shipped.tracking.stuck(NOW)
        mine = await system.orders_of(demo.SHOPPER)
        assert len(mine) == 10 and demo.OTHERS not in {o.order_id for o in mine}
        assert [o.placed_at for o in mine] == sorted((o.placed_at for o in mine), reverse=True)
    finally:
        await system.aclose()


def test_seeding_again_moves_the_dates_and_keeps_the_file(tmp_path: Path) -> None:
    path = tmp_path / "demo.sqlite"
    first = DemoOrders(path)
    seed(first, NOW)
    first.close()
    again = DemoOrders(path)
    assert again.get(demo.DELAYED) is not None  # kept on disk
    later = NOW + timedelta(days=10)
    assert seed(again, later) == 11
    delayed = again.get(demo.DELAYED)
    assert delayed is not None and delayed.ship_by == later - timedelta(days=2)
    assert again.get("nope") is None
