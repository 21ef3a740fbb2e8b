"""The shopper HTTP API: who may act for a conversation, how fast, and what it answers.

Real Redis, the real gateway, identity and rate limits; Rasa faked at its HTTP edge (with the
real handoff service behind ``/request_human``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from bot.gateway.api import ShopperLimits, create_router
from bot.gateway.identity import ShopperAccess
from handoff.models import TicketStatus
from handoff.service import HandoffService
from kefu.conversation import ConversationStore, Role
from kefu.http import RequestLimits, install_error_handlers
from kefu.limits import Rate, RateLimiter
from kefu.redis import async_client
from tests.helpers.fake_rasa import (
    DEFAULT_TEXT,
    RETURN_ANSWER,
    FakeRasa,
    gateway_on_fake_rasa,
)

pytestmark = pytest.mark.redis

SHOP_KEY = "shop-backend-key-0123456789abcdef"


@dataclass
class Api:
    app: FastAPI
    rasa: FakeRasa
    handoff: HandoffService
    conversations: ConversationStore

    def client(self, address: str = "203.0.113.10", **headers: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://kefu", headers=headers)


@pytest.fixture
async def api(redis_url: str) -> AsyncIterator[Api]:
    redis = async_client(redis_url)
    conversations, handoff, rasa, gateway, client = gateway_on_fake_rasa(redis)

    async def readiness() -> dict[str, bool]:
        return {"redis": True, "rasa": False, "knowledge": True, "sweeper": True}

    app = FastAPI()
    app.include_router(create_router(
        gateway, readiness, access=ShopperAccess(redis, {"shop": SHOP_KEY}),
        limiter=RateLimiter(redis),
        limits=ShopperLimits(per_sender=Rate(60, 5), per_address=Rate(6, 40)),
        serving=lambda checks: checks["redis"] and checks["knowledge"]))
    install_error_handlers(app)
    app.add_middleware(RequestLimits)
    yield Api(app, rasa, handoff, conversations)
    await client.aclose()
    await redis.aclose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def say(http: httpx.AsyncClient, sender: str, text: str, token: str | None = None,
              channel: str = "web") -> httpx.Response:
    return await http.post("/api/v1/messages", json={"sender": sender, "text": text,
                                                     "channel": channel},
                           headers=bearer(token) if token else None)


async def test_the_first_reply_carries_the_token_every_later_call_needs(api: Api) -> None:
    async with api.client() as http:
        first = await say(http, "alice", "怎么退货")
        assert first.status_code == 200
        token = first.json()["conversation_token"]
        assert len(token) >= 32 and first.json()["messages"][0]["text"] == RETURN_ANSWER
        anonymous = await say(http, "alice", "在吗")
        assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Bearer"
        wrong = await say(http, "alice", "在吗", token="someone-else-s-token")
        assert wrong.status_code == 403 and wrong.json()["code"] == "conversation_forbidden"
        second = await say(http, "alice", "在吗", token=token)
        assert second.status_code == 200 and "conversation_token" not in second.json()
    assert api.rasa.messages() == ["怎么退货", "在吗"]  # refused calls reached nothing


async def test_nobody_reads_another_shopper_s_replies(api: Api) -> None:
    async with api.client() as http:
        token = (await say(http, "bob", "怎么退货")).json()["conversation_token"]
        mallory = (await say(http, "mallory", "你好")).json()["conversation_token"]
        path = "/api/v1/conversations/bob/messages"
        assert (await http.get(path)).status_code == 401
        assert (await http.get(path, headers=bearer(mallory))).status_code == 403
        mine = await http.get(path, headers=bearer(token))
        assert mine.status_code == 200 and mine.json()["messages"][0]["text"] == RETURN_ANSWER
        nobody = await http.get("/api/v1/conversations/nobody/messages")
        assert nobody.status_code == 401


async def test_nobody_speaks_into_another_shopper_s_ticket_or_cancels_it(api: Api) -> None:
    async with api.client() as http:
        token = (await say(http, "carol", "/request_human")).json()["conversation_token"]
        ticket = await api.handoff.open_ticket("web:carol")
        assert ticket is not None and ticket.status is TicketStatus.WAITING
        for text in ("我是carol，退款给我这个卡号", "/back_to_bot"):
            assert (await say(http, "carol", text)).status_code == 401
        still = await api.handoff.open_ticket("web:carol")
        assert still is not None and still.status is TicketStatus.WAITING
        shopper = [t.text for t in await api.conversations.transcript("web:carol")
                   if t.role is Role.SHOPPER]
        assert shopper == ["/request_human"]
        assert (await say(http, "carol", "/back_to_bot", token=token)).status_code == 200
        assert await api.handoff.open_ticket("web:carol") is None  # she may leave the queue


async def test_an_integration_key_acts_for_its_own_channel_only(api: Api) -> None:
    async with api.client(**bearer(SHOP_KEY)) as shop:
        for sender in ("u1", "u2"):
            reply = await say(shop, sender, "在吗", channel="api")
            assert reply.status_code == 200 and "conversation_token" not in reply.json()
        assert (await say(shop, "u1", "还在吗", channel="api")).status_code == 200
        read = await shop.get("/api/v1/conversations/u1/messages", params={"channel": "api"})
        assert [m["text"] for m in read.json()["messages"]] == [DEFAULT_TEXT, DEFAULT_TEXT]
    async with api.client() as http:
        token = (await say(http, "dora", "你好")).json()["conversation_token"]
        assert (await say(http, "u1", "我是u1", channel="api")).status_code == 403  # not yours
    async with api.client(**bearer(SHOP_KEY)) as shop:
        web = await shop.get("/api/v1/conversations/dora/messages")
        assert web.status_code == 403 and token  # the key never opens a widget chat


async def test_a_flooding_sender_is_refused_quickly_and_others_are_not(api: Api) -> None:
    async with api.client() as http:
        token = (await say(http, "flood", "第0条")).json()["conversation_token"]
        codes = [(await say(http, "flood", f"第{i}条", token=token)).status_code
                 for i in range(1, 12)]
        assert codes[:4] == [200] * 4 and set(codes[4:]) == {429}
        refused = await say(http, "flood", "再来", token=token)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        calm = await say(http, "calm", "怎么退货")
        assert calm.status_code == 200
    assert len(api.rasa.messages()) == 6  # five of flood's (the burst) and calm's


async def test_one_address_is_limited_across_senders(api: Api) -> None:
    async with api.client(address="198.51.100.7") as http:
        codes = [(await say(http, f"s{i}", "你好")).status_code for i in range(45)]
    assert codes[:40] == [200] * 40 and 429 in codes[40:]
    async with api.client(address="198.51.100.8") as other:
        assert (await say(other, "t1", "你好")).status_code == 200


@pytest.mark.parametrize("after", ["abc", "-", "1-", "99999999999999999999-0",
                                   "18446744073709551615-18446744073709551615"])
async def test_a_bad_cursor_is_a_422(api: Api, after: str) -> None:
    async with api.client() as http:
        token = (await say(http, "eve", "你好")).json()["conversation_token"]
        response = await http.get("/api/v1/conversations/eve/messages", params={"after": after},
                                  headers=bearer(token))
    assert response.status_code == 422 and response.json()["code"] == "invalid_cursor"


async def test_readyz_names_what_is_down_and_says_whether_it_can_serve(api: Api) -> None:
    async with api.client() as http:
        strict = await http.get("/readyz")
        serving = await http.get("/readyz", params={"mode": "serving"})
    assert strict.status_code == 503 and strict.json()["degraded"] == ["rasa"]
    assert serving.status_code == 200 and serving.json()["serving"] is True
