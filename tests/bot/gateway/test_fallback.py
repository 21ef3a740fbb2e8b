"""Never silent: the gateway answers by itself when Rasa is down or says nothing.

Real Redis and the real handoff service; Rasa faked at its HTTP edge (down, or answering
nothing); the knowledge side is the actions' client over a service with canned decisions.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from actions.knowledge_client import KnowledgeClient
from bot.gateway import Gateway, Mode
from bot.gateway.fallback import Fallback, IntentExamples
from bot.gateway.rasa_client import RasaClient
from handoff.models import HandoffReason, Priority
from handoff.service import HandoffService
from handoff.settings import HandoffSettings
from kefu.accounts import Presence
from kefu.conversation import ConversationStore, Role
from kefu.redis import async_client
from knowledge.models import Category, Entry
from knowledge.text import normalize
from tests.actions.fakes import INVOICE, REFUND, RETURN, SHIP, FakeKnowledge

pytestmark = pytest.mark.redis

FUTURE_SALE = Entry(id="flash-sale-code", question="闪购口令是什么", answer="口令 KEFU-SECRET",
                    category=Category.PRESALE, valid_from="2099-01-01T00:00:00+08:00")


@pytest.fixture(scope="module")
def intents() -> IntentExamples:
    return IntentExamples.load(normalize)


@pytest.mark.parametrize(("text", "intent"), [
    ("转人工", "request_human"), ("能不能转人工啊", "request_human"), ("真人客服在吗", "request_human"),
    ("get me a human please", "request_human"), ("我要投诉你们的快递", "complain"),
    ("投诉！转人工", "complain"), ("差评", "complain"), ("i want to file a complaint now", "complain"),
    ("怎么退货", None), ("发货要几天", None), ("complaints page", None),
])
def test_the_fallback_knows_rasa_s_handoff_words(intents: IntentExamples, text: str,
                                                 intent: str | None) -> None:
    assert intents.intent_of(normalize(text)) == intent


class Rasa:
    """Rasa at its HTTP edge: down (connection refused) or up and saying nothing."""

    def __init__(self) -> None:
        self.down = True

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json=[])


class Knowledge(FakeKnowledge):
    def entry(self, entry_id: str) -> Entry | None:
        return FUTURE_SALE if entry_id == FUTURE_SALE.id else super().entry(entry_id)


@dataclass
class Parts:
    gateway: Gateway
    handoff: HandoffService
    conversations: ConversationStore
    knowledge: Knowledge
    rasa: Rasa

    async def staff(self, *groups: str) -> None:
        """Someone of each group online, so a handoff opens at once."""
        await self.handoff.agents.add("amy", "pw-amy-123456", list(groups))
        await self.handoff.agents.set_presence("amy", Presence.ONLINE)


@pytest.fixture
async def parts(redis_url: str, intents: IntentExamples) -> AsyncIterator[Parts]:
    redis = async_client(redis_url)
    conversations = ConversationStore(redis)
    handoff = HandoffService(redis, conversations, HandoffSettings(bcrypt_rounds=4))
    knowledge, rasa = Knowledge(), Rasa()
    fallback = Fallback(KnowledgeClient(knowledge), handoff, conversations, intents)
    client = RasaClient("http://rasa", "token", transport=httpx.MockTransport(rasa.handler))
    gateway = Gateway(client, conversations, handoff, normalize=normalize, fallback=fallback)
    yield Parts(gateway, handoff, conversations, knowledge, rasa)
    await client.aclose()
    await redis.aclose()


async def test_rasa_down_a_question_is_answered_from_the_knowledge_base(parts: Parts) -> None:
    parts.knowledge.answer("什么时候发货?", SHIP)  # as Rasa would see it: normalised
    reply = await parts.gateway.handle("web", "a", "什么时候发货？")
    assert reply.mode is Mode.BOT and [m.text for m in reply.messages] == [SHIP.answer]
    turns = await parts.conversations.transcript("web:a")
    assert [(t.role, t.text) for t in turns] == [(Role.SHOPPER, "什么时候发货？"),
                                                 (Role.BOT, SHIP.answer)]
    assert turns[1].meta == {"degraded": "rasa_down"}


@pytest.mark.parametrize(("text", "reason", "priority", "group"), [
    ("转人工", HandoffReason.EXPLICIT_REQUEST, Priority.NORMAL, "presale"),
    ("/request_human", HandoffReason.EXPLICIT_REQUEST, Priority.NORMAL, "presale"),
    ("我要投诉，东西是坏的", HandoffReason.COMPLAINT, Priority.HIGH, "aftersale"),
])
async def test_rasa_down_handoff_words_still_open_a_ticket(
        parts: Parts, text: str, reason: HandoffReason, priority: Priority, group: str) -> None:
    await parts.staff("presale", "aftersale")
    reply = await parts.gateway.handle("web", "b", text)
    ticket = await parts.handoff.open_ticket("web:b")
    assert ticket is not None and reply.mode is Mode.HANDOFF
    assert (ticket.reason, ticket.priority, ticket.group) == (reason, priority, group)
    assert reply.messages and reply.messages[0].text  # told, then the queue notice
    assert any(b.payload == "/back_to_bot" for m in reply.messages for b in m.buttons)
    again = await parts.gateway.handle("web", "b", "还在吗")  # the ticket owns the chat now
    assert again.mode is Mode.HANDOFF


async def test_rasa_down_unsure_questions_are_clarified_or_handed_off(parts: Parts) -> None:
    await parts.staff("presale", "aftersale", "logistics")
    parts.knowledge.clarify("退款", [REFUND, RETURN])
    clarified = await parts.gateway.handle("web", "c", "退款")
    payloads = [b.payload for b in clarified.messages[0].buttons]
    assert payloads == ['/choose_option{"entry_id":"refund-time"}',
                        '/choose_option{"entry_id":"return-policy"}', "/none_of_these",
                        "/request_human"]  # the clarification's way out, as Rasa's has it
    none = await parts.gateway.handle("web", "c", "/none_of_these")
    assert [b.payload for b in none.messages[0].buttons] == ["/request_human"]
    assert none.mode is Mode.BOT and await parts.handoff.open_ticket("web:c") is None
    chosen = await parts.gateway.handle("web", "c", payloads[0])
    assert [m.text for m in chosen.messages] == [REFUND.answer]
    parts.knowledge.handoff("能便宜点吗", [INVOICE])
    handed = await parts.gateway.handle("web", "c", "能便宜点吗")
    ticket = await parts.handoff.open_ticket("web:c")
    assert handed.mode is Mode.HANDOFF and ticket is not None
    assert ticket.reason is HandoffReason.LOW_CONFIDENCE


async def test_rasa_down_an_unreleased_entry_is_not_answered(parts: Parts) -> None:
    payload = "/choose_option" + json.dumps({"entry_id": FUTURE_SALE.id})
    reply = await parts.gateway.handle("web", "d", payload)
    assert reply.messages and all("KEFU-SECRET" not in m.text for m in reply.messages)
    assert [b.payload for b in reply.messages[-1].buttons] == ["/request_human"]


async def test_rasa_saying_nothing_is_answered_too(parts: Parts) -> None:
    parts.rasa.down = False  # up, but its action failed: an empty list of messages
    parts.knowledge.answer("怎么退货", RETURN)
    reply = await parts.gateway.handle("web", "e", "怎么退货")
    assert [m.text for m in reply.messages] == [RETURN.answer]
    turns = await parts.conversations.transcript("web:e")
    assert turns[-1].meta == {"degraded": "silent"}
    await parts.staff("presale", "aftersale", "logistics")
    human = await parts.gateway.handle("web", "e", "人工客服")
    assert human.mode is Mode.HANDOFF and await parts.handoff.open_ticket("web:e") is not None


async def test_the_knowledge_side_failing_too_still_hands_off(parts: Parts) -> None:
    await parts.staff("presale", "aftersale", "logistics")
    parts.knowledge.fail = True
    reply = await parts.gateway.handle("web", "f", "这个能用花呗吗")
    assert reply.mode is Mode.HANDOFF and reply.messages


async def test_rasa_down_nobody_online_the_shopper_chooses_first(parts: Parts) -> None:
    asked = await parts.gateway.handle("web", "g", "转人工")
    assert asked.mode is Mode.BOT and await parts.handoff.open_ticket("web:g") is None
    assert "不在线" in asked.messages[-1].text
    payloads = [b.payload for b in asked.messages[-1].buttons]
    assert payloads == ["/leave_message", "/keep_with_bot"]
    kept = await parts.gateway.handle("web", "g", "/keep_with_bot")
    assert kept.mode is Mode.BOT and await parts.handoff.open_ticket("web:g") is None
    assert kept.messages and "继续" in kept.messages[0].text
    left = await parts.gateway.handle("web", "g", "/leave_message")
    ticket = await parts.handoff.open_ticket("web:g")
    assert left.mode is Mode.HANDOFF and ticket is not None
    assert ticket.reason is HandoffReason.EXPLICIT_REQUEST
    turns = await parts.conversations.transcript("web:g")
    assert all(t.meta.get("degraded") == "rasa_down" for t in turns if t.role is Role.BOT)
