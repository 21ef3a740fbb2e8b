"""The store's order-event webhook: signed events tell the watching conversations at once (real
Redis, the real adapter over the demo order service); unsigned, forged, replayed and malformed
posts are refused without using up the event id; a repeated event id is told once."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml
from fastapi import FastAPI

from kefu.conversation import ConversationStore, Role
from kefu.http import install_error_handlers
from kefu.keys import order_event_key
from kefu.redis import async_client
from orders import HttpOrderSystem
from orders import demo_data as demo
from orders.demo import DemoOrders, create_app
from orders.proactive import OrderEvent, ProactiveService
from orders.proactive_webhook import (
    CLAIM_TTL,
    HANDLING,
    PATH,
    EventOutcome,
    OrderEventHandler,
    OrderEventIn,
    create_router,
    sign,
    verify,
)
from tests.helpers.demo_orders import KEY, over_http, seeded

pytestmark = pytest.mark.redis

NOW = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)
SECRET = "store-shared-secret"
OPENAPI = Path(__file__).resolve().parents[2] / "orders" / "openapi.yaml"


@dataclass
class Hook:
    client: httpx.AsyncClient
    conversations: ConversationStore
    service: ProactiveService
    store: DemoOrders
    now: float

    async def post(self, event: dict[str, object] | bytes, *, secret: str = SECRET,
                   at: float | None = None) -> httpx.Response:
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        stamp = str(int(self.now if at is None else at))
        return await self.client.post(PATH, content=body, headers={
            "Content-Type": "application/json", "X-Kefu-Timestamp": stamp,
            "X-Kefu-Signature": sign(secret, stamp, body)})

    async def told(self, conversation: str) -> list[str]:
        return [t.text for t in await self.conversations.transcript(conversation)
                if t.role is Role.SYSTEM]


def _app(handler: OrderEventHandler, secret: str | None, clock: Callable[[], float]) -> FastAPI:
    app = FastAPI()
    app.include_router(create_router(handler, secret, tolerance=300, clock=clock))
    install_error_handlers(app)
    return app


@pytest.fixture
async def hook(redis_url: str) -> AsyncIterator[Hook]:
    redis = async_client(redis_url)
    store = seeded(NOW)
    system = over_http(store)
    conversations = ConversationStore(redis)
    service = ProactiveService(redis, conversations, system, clock=lambda: NOW)
    now = NOW.timestamp()
    app = _app(OrderEventHandler(redis, service), SECRET, lambda: now)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://kefu.test") as client:
        yield Hook(client, conversations, service, store, now)
    await system.aclose()
    await redis.aclose()


async def test_a_signed_event_is_told_at_once_and_a_repeat_only_once(hook: Hook) -> None:
    await hook.conversations.set_profile("web:amy", language="zh", channel="web")
    await hook.service.watch(demo.DELAYED, "web:amy")
    event = {"event_id": "evt-1", "order_id": demo.DELAYED}  # "changed": kefu reads what
    first = await hook.post(event)
    assert first.status_code == 200, first.text
    assert first.json() == {"event_id": "evt-1", "order_id": demo.DELAYED, "duplicate": False,
                            "events": ["ship_delayed"], "told": 1}
    [text] = await hook.told("web:amy")
    assert text.startswith(f"【订单提醒】您的订单 {demo.DELAYED} 已超过承诺的发货时间")
    again = await hook.post(event)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["told"] == 0
    assert len(await hook.told("web:amy")) == 1  # delivered once
    assert await hook.service.tick() == []  # the poller does not tell it a second time


async def test_a_typed_event_is_told_as_the_store_says(hook: Hook) -> None:
    await hook.conversations.set_profile("telegram:9", language="en", channel="telegram")
    await hook.service.watch(demo.REFUNDING, "telegram:9")
    response = await hook.post({"event_id": "r-1", "order_id": demo.REFUNDING,
                                "event": "refund_completed", "shop": "ignored extra field"})
    assert response.json()["events"] == ["refund_completed"], response.text
    [text] = await hook.told("telegram:9")
    assert text.startswith("[Refund] The refund of ¥") and demo.REFUNDING in text


async def test_unsigned_forged_and_replayed_posts_are_refused(hook: Hook) -> None:
    await hook.service.watch(demo.DELAYED, "web:amy")
    event = {"event_id": "evt-2", "order_id": demo.DELAYED}
    unsigned = await hook.client.post(PATH, json=event)
    assert unsigned.status_code == 401 and unsigned.json()["code"] == "bad_signature"
    forged = await hook.post(event, secret="guessed")
    assert forged.status_code == 401 and forged.json()["code"] == "bad_signature"
    body = json.dumps(event).encode()
    stamp = str(int(hook.now))
    tampered = await hook.client.post(PATH, content=body.replace(b"evt-2", b"evt-3"), headers={
        "X-Kefu-Timestamp": stamp, "X-Kefu-Signature": sign(SECRET, stamp, body)})
    assert tampered.status_code == 401
    old = await hook.post(event, at=hook.now - 301)
    assert old.status_code == 403 and old.json() == {
        "detail": "the timestamp is 301 s from now (at most 300 s)", "code": "stale_timestamp",
        "skew_seconds": 301}
    assert (await hook.post(event, at=hook.now + 600)).status_code == 403  # from the future
    assert await hook.told("web:amy") == []
    assert (await hook.post(event)).json()["told"] == 1  # the id was not used up


async def test_malformed_events_are_422_and_lose_nothing(hook: Hook) -> None:
    await hook.service.watch(demo.DELAYED, "web:amy")
    for bad in (b"not json", b"{}", json.dumps({"event_id": "e", "order_id": ""}).encode(),
                json.dumps({"event_id": "e 1", "order_id": demo.DELAYED}).encode(),
                json.dumps({"event_id": "e", "order_id": demo.DELAYED,
                            "event": "exploded"}).encode()):
        response = await hook.post(bad)
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["code"] == "invalid_request"
    assert await hook.told("web:amy") == []
    ok = await hook.post({"event_id": "e", "order_id": demo.DELAYED})
    assert ok.status_code == 200 and ok.json()["told"] == 1


async def test_an_unknown_order_is_404(hook: Hook) -> None:
    missing = await hook.post({"event_id": "m-1", "order_id": "9999"})
    assert missing.status_code == 404 and missing.json()["code"] == "order_not_found"


async def test_an_event_refused_in_an_outage_is_told_on_the_retry(redis_url: str) -> None:
    """503 while the order system is down; the same event id is told when the store retries."""
    redis = async_client(redis_url)
    store = seeded(NOW)
    healthy = httpx.ASGITransport(app=create_app(store, KEY))
    broken = httpx.MockTransport(lambda _request: httpx.Response(500))
    transport: list[httpx.AsyncBaseTransport] = [broken]

    class Switch(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            return await transport[0].handle_async_request(request)

    system = HttpOrderSystem("http://orders.test", KEY, transport=Switch())
    conversations = ConversationStore(redis)
    service = ProactiveService(redis, conversations, system, clock=lambda: NOW)
    await service.watch(demo.DELAYED, "web:amy")
    app = _app(OrderEventHandler(redis, service), SECRET, lambda: NOW.timestamp())
    body = json.dumps({"event_id": "retry-1", "order_id": demo.DELAYED}).encode()
    stamp = str(int(NOW.timestamp()))
    headers = {"X-Kefu-Timestamp": stamp, "X-Kefu-Signature": sign(SECRET, stamp, body)}
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://kefu.test") as client:
            down = await client.post(PATH, content=body, headers=headers)
            assert down.status_code == 503 and down.headers["Retry-After"] == "5"
            assert await conversations.transcript("web:amy") == []
            transport[0] = healthy
            retried = await client.post(PATH, content=body, headers=headers)
            assert retried.status_code == 200 and retried.json()["told"] == 1
    finally:
        await system.aclose()
        await redis.aclose()


async def test_without_a_secret_the_webhook_is_closed(redis_url: str) -> None:
    redis = async_client(redis_url)
    service = ProactiveService(redis, ConversationStore(redis), None)
    app = _app(OrderEventHandler(redis, service), None, lambda: NOW.timestamp())
    body = b'{"event_id": "x", "order_id": "1"}'
    stamp = str(int(NOW.timestamp()))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://kefu.test") as client:
            for secret in ("", SECRET, "anything"):
                response = await client.post(PATH, content=body, headers={
                    "X-Kefu-Timestamp": stamp, "X-Kefu-Signature": sign(secret, stamp, body)})
                assert response.status_code == 404
                assert response.json()["code"] == "order_webhook_not_configured"
    finally:
        await redis.aclose()


def test_the_signature_is_checked_in_full() -> None:
    body = b'{"event_id": "a", "order_id": "1"}'
    good = sign(SECRET, "1000", body)
    assert good.startswith("sha256=") and len(good) == 7 + 64
    verify(SECRET, "1000", good, body, now=1100, tolerance=300)
    for stamp, signature in (("1000", good[:-1]), ("1000", good.upper()), ("1001", good),
                             ("1000", "签名"), ("", good), ("1000", "")):
        with pytest.raises(Exception) as caught:
            verify(SECRET, stamp, signature, body, now=1100, tolerance=300)
        assert getattr(caught.value, "status_code", None) == 401, (stamp, signature)


def test_the_contract_describes_the_webhook_kefu_serves() -> None:
    contract = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    schemas = contract["components"]["schemas"]
    assert schemas["OrderEventType"]["enum"] == [e.value for e in OrderEvent]
    accepted = OrderEventIn.model_json_schema()
    assert sorted(schemas["OrderEventIn"]["required"]) == sorted(accepted["required"])
    assert set(schemas["OrderEventIn"]["properties"]) == set(accepted["properties"])
    assert set(schemas["OrderEventOutcome"]["properties"]) == set(EventOutcome.model_fields)
    hook = contract["webhooks"]["orderEvent"]["post"]
    headers = {p["name"] for p in hook["parameters"] if p["in"] == "header"}
    assert headers == {"X-Kefu-Timestamp", "X-Kefu-Signature"}
    assert set(hook["responses"]) == {"200", "401", "403", "404", "422", "503"}


async def test_an_opted_out_or_unwatched_order_is_handled_and_tells_nobody(hook: Hook) -> None:
    await hook.service.watch(demo.DELAYED, "web:quiet")
    await hook.service.opt_out("web:quiet")
    quiet = await hook.post({"event_id": "q-1", "order_id": demo.DELAYED})
    assert quiet.json()["events"] == ["ship_delayed"] and quiet.json()["told"] == 0
    assert await hook.told("web:quiet") == []
    nobody = await hook.post({"event_id": "q-2", "order_id": demo.STUCK})
    assert nobody.json()["events"] == ["stuck_in_transit"] and nobody.json()["told"] == 0


async def test_a_concurrent_repeat_is_asked_to_retry_and_a_dead_claim_lapses(
        hook: Hook, redis_url: str) -> None:
    await hook.service.watch(demo.DELAYED, "web:amy")
    redis = async_client(redis_url)
    try:
        key = order_event_key("c-1")
        await redis.set(key, HANDLING, ex=int(CLAIM_TTL.total_seconds()))  # another gateway
        busy = await hook.post({"event_id": "c-1", "order_id": demo.DELAYED})
        assert busy.status_code == 503 and busy.json()["code"] == "event_in_progress"
        assert busy.headers["Retry-After"] == "5"
        assert 0 < await redis.ttl(key) <= 60  # it died: its claim lapses within a minute
        await redis.delete(key)
        assert (await hook.post({"event_id": "c-1", "order_id": demo.DELAYED})).json()["told"] == 1
        assert await redis.ttl(key) > 6 * 24 * 3600  # handled: remembered for 7 days
    finally:
        await redis.aclose()
    assert len(await hook.told("web:amy")) == 1
