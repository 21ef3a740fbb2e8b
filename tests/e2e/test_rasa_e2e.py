"""Shopper conversations through the real Rasa server, the gateway (with the actions) and Redis.

Messages go to Rasa's REST webhook with the metadata the gateway adds (the gateway path itself is
covered at the end). The knowledge base is the demo store the gateway publishes into an empty
Redis; questions below are paraphrases, not its stored variants, on evergreen entries.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import redis

from actions.endpoint import ACTIONS_PREFIX, SECRET_HEADER
from handoff.models import HandoffReason, Priority, Ticket
from handoff.service import HandoffService
from kefu.conversation import BotAnalysis, ConversationStore
from kefu.keys import RASA_TRACKER_PREFIX
from kefu.redis import async_client
from kefu.stack import StackConfig
from knowledge.loader import load_kb
from knowledge.models import KnowledgeBase
from knowledge.settings import DEMO_STORE_PATH
from tests.e2e.conftest import RestChat, clarified

pytestmark = [pytest.mark.rasa, pytest.mark.redis, pytest.mark.model, pytest.mark.slow]

ZH_FEEDBACK = [{"title": "有帮助 👍", "payload": "/feedback_helpful"},
               {"title": "没帮助 👎", "payload": "/feedback_not_helpful"}]
EN_FEEDBACK = [{"title": "Helpful 👍", "payload": "/feedback_helpful"},
               {"title": "Not helpful 👎", "payload": "/feedback_not_helpful"}]


@pytest.fixture(scope="module")
def demo() -> KnowledgeBase:
    return load_kb(DEMO_STORE_PATH)


def answer_of(kb: KnowledgeBase, entry_id: str) -> str:
    entry = kb.entry(entry_id)
    assert entry is not None, entry_id
    return entry.answer


def record(stack: StackConfig, conversation: str) -> tuple[Ticket | None, list[BotAnalysis],
                                                            dict[str, str]]:
    """Open ticket, bot-turn analyses and captured slots of a conversation, read from Redis."""
    async def read() -> tuple[Ticket | None, list[BotAnalysis], dict[str, str]]:
        client = async_client(stack.redis_url)
        try:
            conversations = ConversationStore(client)
            ticket = await HandoffService(client, conversations).open_ticket(conversation)
            return ticket, await conversations.analyses(conversation), \
                await conversations.slots(conversation)
        finally:
            await client.aclose()

    return asyncio.run(read())


def told(stack: StackConfig, conversation: str) -> list[str]:
    """What the conversation's transcript sent the shopper (bot, agent and system turns)."""
    async def read() -> list[str]:
        client = async_client(stack.redis_url)
        try:
            turns = await ConversationStore(client).sent_to_shopper(conversation, None)
            return [t.text for t in turns]
        finally:
            await client.aclose()

    return asyncio.run(read())


def texts(replies: list[dict[str, Any]]) -> list[str]:
    return [r.get("text", "") for r in replies]


@pytest.mark.parametrize(("text", "expected"), [
    ("你好", "您好！我是智能客服小助手，请问有什么可以帮您？"),
    ("hello there", "Hello! I'm the shop assistant. How can I help you?"),
])
def test_greeting_gets_a_greeting(chat: RestChat, text: str, expected: str) -> None:
    assert texts(chat.say(text)) == [expected]


@pytest.mark.parametrize(("text", "language"), [
    ("how do I return this?", "en"),
    ("怎么退货", "zh"),
    ("iphone 15 有货吗", "zh"),  # mixed: a Chinese character weighs three Latin letters
    ("123456789012345678 👍", None),  # no letters: the conversation keeps its language
])
def test_rasa_parse_tags_the_reply_language(stack: StackConfig, text: str,
                                            language: str | None) -> None:
    parsed = httpx.post(f"{stack.rasa_url}/model/parse", params={"token": stack.rasa_token},
                        json={"text": text}, timeout=30).json()
    found = [e["value"] for e in parsed["entities"] if e["entity"] == "language"]
    assert found == ([language] if language else [])


def test_the_reply_language_follows_the_shopper_and_digits_keep_it(chat: RestChat) -> None:
    assert texts(chat.say("hello")) == ["Hello! I'm the shop assistant. How can I help you?"]
    assert texts(chat.say("123456789012345678")) == [  # no letters: still English
        "Got it, order 123456789012345678. What can I help you with on this order?"]
    assert texts(chat.say("谢谢")) == ["不客气，很高兴能帮到您！还有其他问题随时问我哦。"]
    assert texts(chat.say("thanks!")) == [
        "You're welcome! Ask me anytime if anything else comes up."]


@pytest.mark.parametrize(("text", "entry_id"), [
    ("跑鞋脏了要怎么清理", "care-shoes"),
    ("你们默认用哪家快递发货", "carriers"),
])
def test_chinese_paraphrase_gets_the_right_answer(stack: StackConfig, chat: RestChat,
                                                  demo: KnowledgeBase, text: str,
                                                  entry_id: str) -> None:
    [reply] = chat.say(text)
    assert reply["text"] == answer_of(demo, entry_id)
    assert reply["buttons"] == ZH_FEEDBACK
    _ticket, [analysis], _slots = record(stack, chat.sender)
    assert (analysis.decision, analysis.entry_id, analysis.intent) == \
        ("answer", entry_id, "ask_question")
    assert analysis.candidates[0].entry_id == entry_id


@pytest.mark.parametrize(("text", "entry_id"), [
    ("how can I send back shoes I don't like", "en-returns"),
    ("is this an official store? are the shoes genuine", "en-authenticity"),
])
def test_english_paraphrase_gets_the_right_answer(chat: RestChat, demo: KnowledgeBase,
                                                  text: str, entry_id: str) -> None:
    [reply] = chat.say(text)
    assert reply["text"] == answer_of(demo, entry_id)
    assert reply["buttons"] == EN_FEEDBACK


def test_feedback_buttons_thank_then_offer_a_person(stack: StackConfig, chat: RestChat) -> None:
    chat.say("跑鞋脏了要怎么清理")
    assert texts(chat.say("/feedback_helpful")) == ["很高兴能帮到您！还有其他问题随时问我哦。"]
    [sorry] = chat.say("/feedback_not_helpful")
    assert sorry["buttons"] == [{"title": "转人工", "payload": "/request_human"}]
    assert record(stack, chat.sender)[0] is None


def test_clarification_then_a_choice_answers(stack: StackConfig, chat: RestChat,
                                             demo: KnowledgeBase) -> None:
    text, options = clarified(stack.gateway_url)
    [clarify] = chat.say(text)
    assert clarify["text"] == "您是想问下面哪一个？"
    payloads = [b["payload"] for b in clarify["buttons"]]
    # the options, then the ways out
    assert payloads[:-2] == [f'/choose_option{{"entry_id":"{o}"}}' for o in options]
    assert 2 <= len(options) <= 3
    assert payloads[-2:] == ["/none_of_these", "/request_human"]
    chosen = options[-1]  # not only the first: the choice, not the ranking, decides
    [answer] = chat.say(f'/choose_option{{"entry_id":"{chosen}"}}')
    assert answer["text"] == answer_of(demo, chosen)


@pytest.mark.parametrize("text", ["转人工", "/request_human", "talk to a person please"])
def test_asking_for_a_person_opens_a_ticket(stack: StackConfig, chat: RestChat, text: str,
                                            someone_online: str) -> None:
    chat.say(text)
    ticket, _analyses, _slots = record(stack, chat.sender)
    assert ticket is not None
    assert (ticket.reason, ticket.priority, ticket.channel) == \
        (HandoffReason.EXPLICIT_REQUEST, Priority.NORMAL, "web")
    # the bot's "connecting you" is written to the transcript before the queue status follows
    said, status = told(stack, chat.sender)[-2:]
    assert "人工客服" in said or "person" in said
    assert "客服" in status or "agent" in status.lower()


@pytest.mark.parametrize("text", ["转人工", "/request_human"])
def test_asking_for_a_person_inside_the_gift_registration_stops_it(
        stack: StackConfig, chat: RestChat, text: str, someone_online: str) -> None:
    """The form's question is not answered with "转人工": the form stops and a person takes over."""
    assert "订单号" in "".join(texts(chat.say("我要登记赠品")))
    chat.say(text)
    ticket, _analyses, _slots = record(stack, chat.sender)
    assert ticket is not None and ticket.reason is HandoffReason.EXPLICIT_REQUEST
    said, _status = told(stack, chat.sender)[-2:]
    assert "人工客服" in said and "订单号" not in said


def test_complaint_opens_a_high_priority_aftersale_ticket(stack: StackConfig, chat: RestChat,
                                                          someone_online: str) -> None:
    chat.say("我要投诉，退款一直没到账")
    ticket, _analyses, _slots = record(stack, chat.sender)
    assert ticket is not None
    assert (ticket.reason, ticket.priority, ticket.group) == \
        (HandoffReason.COMPLAINT, Priority.HIGH, "aftersale")


@pytest.mark.parametrize("text", ["明天上海会下雨吗", "what's the weather in Beijing"])
def test_unknown_question_hands_off(stack: StackConfig, chat: RestChat, text: str,
                                    someone_online: str) -> None:
    chat.say(text)
    ticket, [analysis], _slots = record(stack, chat.sender)
    assert analysis.decision == "handoff"
    assert ticket is not None and ticket.reason is HandoffReason.LOW_CONFIDENCE


def test_order_number_is_captured_for_agents(stack: StackConfig, chat: RestChat,
                                            someone_online: str) -> None:
    [reply] = chat.say("订单号E2026011512345678")
    assert "E2026011512345678" in reply["text"]
    chat.say("转人工")
    ticket, _analyses, slots = record(stack, chat.sender)
    assert slots == {"order_number": "E2026011512345678"}
    assert ticket is not None and ticket.context.order_number == "E2026011512345678"


def test_nobody_online_the_bot_asks_before_moving_the_shopper(
        stack: StackConfig, chat: RestChat, nobody_online: None) -> None:
    [choice] = chat.say("转人工")
    assert choice["text"].startswith("现在售前客服都不在线")
    assert [b["payload"] for b in choice["buttons"]] == ["/leave_message", "/keep_with_bot"]
    assert record(stack, chat.sender)[0] is None
    assert texts(chat.say("/keep_with_bot")) == ["好的，我继续为您服务。您可以换个说法再问我。"]
    chat.say("转人工")
    assert chat.say("/leave_message") == []  # the handoff service asks for the message
    ticket, _analyses, _slots = record(stack, chat.sender)
    assert ticket is not None and ticket.offline
    assert told(stack, chat.sender)[-1].startswith("当前暂无客服在线。请直接留言")


def test_order_number_typed_as_shoppers_do(stack: StackConfig, chat: RestChat) -> None:
    chat.say("我的订单 2026 1120 1234 5 到哪了")
    assert record(stack, chat.sender)[2] == {"order_number": "2026112012345"}


def test_tracker_lives_under_kefus_key_prefix(stack: StackConfig, chat: RestChat) -> None:
    chat.say("你好")
    client = redis.Redis.from_url(stack.redis_url)
    try:
        assert client.exists(f"{RASA_TRACKER_PREFIX}{chat.sender}") == 1
        assert client.ttl(f"{RASA_TRACKER_PREFIX}{chat.sender}") > 0
    finally:
        client.close()


def test_gateway_path_traditional_question_and_handoff_mode(stack: StackConfig,
                                                            demo: KnowledgeBase,
                                                            someone_online: str) -> None:
    url = f"{stack.gateway_url}/api/v1/messages"
    with httpx.Client(timeout=60) as client:
        answered = client.post(url, json={"sender": "gw-e2e", "text": "跑鞋髒了要怎麼清理"})
        answered.raise_for_status()
        body = answered.json()
        assert body["mode"] == "bot"
        assert body["messages"][0]["text"] == answer_of(demo, "care-shoes")

        token = body["conversation_token"]
        handed = client.post(url, json={"sender": "gw-e2e", "text": "转人工"},
                             headers={"Authorization": f"Bearer {token}"}).json()
        assert handed["mode"] == "handoff"


def test_the_gateways_action_endpoint_only_answers_rasa(stack: StackConfig) -> None:
    """Rasa's answers above went through it; a caller without Rasa's secret gets nothing run."""
    call = {"next_action": "action_handoff", "sender_id": "web:intruder",
            "tracker": {"sender_id": "web:intruder", "slots": {},
                        "latest_message": {"text": "转人工", "intent": {"name": "request_human"}},
                        "events": [], "paused": False, "followup_action": None,
                        "active_loop": {}, "latest_action_name": "action_listen"}}
    url = f"{stack.gateway_url}{ACTIONS_PREFIX}/webhook"
    for headers in ({}, {SECRET_HEADER: "change-me"}):
        refused = httpx.post(url, json=call, headers=headers, timeout=30)
        assert refused.status_code == 403, refused.text
    ticket, analyses, _slots = record(stack, "web:intruder")
    assert ticket is None and analyses == []
    assert "/internal/" not in httpx.get(f"{stack.gateway_url}/openapi.json", timeout=30).text
