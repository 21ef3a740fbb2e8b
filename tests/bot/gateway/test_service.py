"""Gateway routing against a real Redis and the real handoff service; Rasa faked at its HTTP edge."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from bot.gateway import Gateway, Mode
from bot.gateway.errors import InvalidMessage
from bot.gateway.rasa_client import RasaClient
from bot.gateway.service import SILENT_TEXT
from handoff.models import HandoffReason
from handoff.service import HandoffService
from kefu.conversation import ConversationStore, Role
from kefu.redis import async_client

pytestmark = pytest.mark.redis


class FakeRasa:
    """A Rasa REST channel stand-in that records what reached it."""

    def __init__(self) -> None:
        self.received: list[dict[str, object]] = []
        self.down = False

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        body = json.loads(request.content)
        self.received.append(body)
        text = body["message"]
        return httpx.Response(200, json=[{"recipient_id": body["sender"], "text": f"echo:{text}",
                                          "buttons": [{"title": "有帮助", "payload": "/feedback_helpful"}]}])


@pytest.fixture
def fake_rasa() -> FakeRasa:
    return FakeRasa()


@pytest.fixture
async def parts(redis_url: str, fake_rasa: FakeRasa) -> AsyncIterator[tuple[Gateway, HandoffService, ConversationStore]]:
    redis = async_client(redis_url)
    conversations = ConversationStore(redis)
    handoff = HandoffService(redis, conversations)
    rasa = RasaClient("http://rasa", "token", transport=httpx.MockTransport(fake_rasa.handler))
    yield Gateway(rasa, conversations, handoff, normalize=lambda t: t.lower()), handoff, conversations
    await rasa.aclose()
    await redis.aclose()


async def test_bot_mode_goes_through_rasa_and_keeps_the_transcript(parts, fake_rasa) -> None:
    gateway, _, conversations = parts
    reply = await gateway.handle("web", "alice", "  Hello  ")
    assert reply.mode is Mode.BOT
    assert [m.text for m in reply.messages] == ["echo:hello"]
    assert reply.messages[0].buttons[0].payload == "/feedback_helpful"
    assert fake_rasa.received[0]["sender"] == "web:alice"
    assert fake_rasa.received[0]["metadata"]["original_text"] == "Hello"
    turns = await conversations.transcript("web:alice")
    assert [(t.role, t.text) for t in turns] == [(Role.SHOPPER, "Hello"), (Role.BOT, "echo:hello")]


async def test_payloads_reach_rasa_unnormalised(parts, fake_rasa) -> None:
    gateway, _, _ = parts
    await gateway.handle("web", "bob", '/choose_option{"entry_id":"Deposit-Refund"}')
    assert fake_rasa.received[0]["message"] == '/choose_option{"entry_id":"Deposit-Refund"}'


async def test_open_ticket_keeps_messages_away_from_rasa(parts, fake_rasa) -> None:
    gateway, handoff, conversations = parts
    await gateway.handle("web", "carol", "我要退货")
    await handoff.request_handoff("web:carol", reason=HandoffReason.EXPLICIT_REQUEST, channel="web")
    reply = await gateway.handle("web", "carol", "订单号 123456789012345678")
    assert reply.mode is Mode.HANDOFF
    assert reply.messages == []
    assert len(fake_rasa.received) == 1
    turns = await conversations.transcript("web:carol")
    assert turns[-1].role is Role.SHOPPER and turns[-1].text == "订单号 123456789012345678"


async def test_messages_after_returns_only_what_the_shopper_was_sent(parts) -> None:
    gateway, _, _ = parts
    first = await gateway.handle("web", "dan", "hi")
    await gateway.handle("web", "dan", "again")
    newer = await gateway.messages_after("web", "dan", first.messages[0].id)
    assert [m.text for m in newer] == ["echo:again"]


@pytest.mark.parametrize("text", ["", "   ", "x" * 2001])
async def test_bad_text_is_rejected_with_the_field(parts, text: str) -> None:
    gateway, _, _ = parts
    with pytest.raises(InvalidMessage) as info:
        await gateway.handle("web", "erin", text)
    assert info.value.field == "text"


async def test_rasa_down_is_never_silent_and_the_message_is_kept(parts, fake_rasa) -> None:
    gateway, _, conversations = parts
    fake_rasa.down = True
    reply = await gateway.handle("web", "frank", "在吗")  # no 503: the gateway answers itself
    assert reply.mode is Mode.BOT and [m.text for m in reply.messages] == [SILENT_TEXT]
    assert [t.text for t in await conversations.transcript("web:frank")] == ["在吗", SILENT_TEXT]


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb"])
async def test_a_lone_surrogate_is_refused_not_stored(parts, text: str) -> None:
    gateway, _, conversations = parts
    with pytest.raises(InvalidMessage):
        await gateway.handle("web", "sur", text)
    assert await conversations.transcript("web:sur") == []


async def test_a_handoff_during_the_turn_is_in_the_reply(redis_url: str) -> None:
    """The queue message the handoff sends while Rasa runs its action is not skipped by readers."""
    redis = async_client(redis_url)
    conversations = ConversationStore(redis)
    handoff = HandoffService(redis, conversations)

    async def rasa_hands_off(request: httpx.Request) -> httpx.Response:
        sender = json.loads(request.content)["sender"]
        await handoff.request_handoff(sender, reason=HandoffReason.EXPLICIT_REQUEST, channel="web")
        return httpx.Response(200, json=[{"recipient_id": sender, "text": "马上为您转接人工客服"}])

    rasa = RasaClient("http://rasa", "token", transport=httpx.MockTransport(rasa_hands_off))
    gateway = Gateway(rasa, conversations, handoff)
    try:
        reply = await gateway.handle("web", "gina", "转人工")
        assert reply.mode is Mode.HANDOFF
        assert [(m.text, [b.payload for b in m.buttons]) for m in reply.messages][-1] == \
            ("马上为您转接人工客服", [])
        assert any(b.payload == "/back_to_bot" for m in reply.messages for b in m.buttons)
        assert await gateway.messages_after("web", "gina", reply.messages[-1].id) == []
    finally:
        await rasa.aclose()
        await redis.aclose()


async def test_overload_answers_busy_and_keeps_the_message(redis_url: str) -> None:
    """Past the in-flight limit a shopper gets the busy answer, not an error, and nothing is lost."""
    import asyncio

    from bot.gateway.backpressure import BUSY_TEXT, Backpressure

    redis = async_client(redis_url)
    conversations = ConversationStore(redis)
    release = asyncio.Event()

    async def slow_rasa(request: httpx.Request) -> httpx.Response:
        await release.wait()
        sender = json.loads(request.content)["sender"]
        return httpx.Response(200, json=[{"recipient_id": sender, "text": "答复"}])

    rasa = RasaClient("http://rasa", "token", transport=httpx.MockTransport(slow_rasa))
    gateway = Gateway(rasa, conversations, HandoffService(redis, conversations),
                      backpressure=Backpressure(max_in_flight=1, max_wait_seconds=0.2))
    try:
        first = asyncio.create_task(gateway.handle("web", "h1", "第一个问题"))
        await asyncio.sleep(0.05)
        busy = await gateway.handle("web", "h2", "第二个问题")
        assert [m.text for m in busy.messages] == [BUSY_TEXT]
        assert [t.text for t in await conversations.transcript("web:h2")] == ["第二个问题", BUSY_TEXT]
        release.set()
        assert [m.text for m in (await first).messages] == ["答复"]
    finally:
        await rasa.aclose()
        await redis.aclose()


async def test_typed_messages_are_prefetched_before_rasa_and_payloads_are_not(
        redis_url: str, fake_rasa: FakeRasa) -> None:
    redis = async_client(redis_url)
    conversations = ConversationStore(redis)
    handoff = HandoffService(redis, conversations)
    rasa = RasaClient("http://rasa", "token", transport=httpx.MockTransport(fake_rasa.handler))
    seen: list[tuple[str, int]] = []  # (text, messages Rasa had received by then)
    gateway = Gateway(rasa, conversations, handoff, normalize=lambda t: t.lower(),
                      prefetch=lambda text: seen.append((text, len(fake_rasa.received))))
    await gateway.handle("web", "gina", "  Refund 定金?  ")
    await gateway.handle("web", "gina", "/feedback_helpful")
    await handoff.request_handoff("web:gina", reason=HandoffReason.EXPLICIT_REQUEST, channel="web")
    await gateway.handle("web", "gina", "still there?")  # a person's turn: Rasa never asked
    assert seen == [("refund 定金?", 0)]
    await rasa.aclose()
    await redis.aclose()


async def test_a_failing_prefetch_loses_nothing(redis_url: str, fake_rasa: FakeRasa) -> None:
    redis = async_client(redis_url)
    conversations = ConversationStore(redis)

    def broken(_text: str) -> None:
        raise RuntimeError("encoder gone (test)")

    rasa = RasaClient("http://rasa", "token", transport=httpx.MockTransport(fake_rasa.handler))
    gateway = Gateway(rasa, conversations, HandoffService(redis, conversations), prefetch=broken)
    reply = await gateway.handle("web", "hank", "在吗")
    assert [m.text for m in reply.messages] == ["echo:在吗"]
    await rasa.aclose()
    await redis.aclose()
