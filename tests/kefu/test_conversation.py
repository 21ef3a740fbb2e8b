"""The shared conversation record against a real Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kefu.conversation import BotAnalysis, Button, CandidateScore, ConversationStore, Role
from kefu.keys import conv_outbound_key, conv_questions_key, conv_transcript_key
from kefu.redis import async_client

pytestmark = pytest.mark.redis


@pytest.fixture
async def store(redis_url: str):
    redis = async_client(redis_url)
    yield ConversationStore(redis, ttl_seconds=3600), redis
    await redis.aclose()


async def test_turns_come_back_in_order_with_ids_usable_as_cursors(store) -> None:
    conversations, _ = store
    first = await conversations.append("web:a", Role.SHOPPER, "你好")
    second = await conversations.append("web:a", Role.BOT, "您好！", buttons=[Button(title="是", payload="/affirm")])
    turns = await conversations.transcript("web:a")
    assert [t.id for t in turns] == [first.id, second.id]
    assert turns[1].buttons[0].payload == "/affirm"
    assert [t.text for t in await conversations.transcript("web:a", after=first.id)] == ["您好！"]


async def test_only_bot_agent_system_turns_count_as_sent_to_the_shopper(store) -> None:
    conversations, _ = store
    await conversations.append("web:b", Role.SHOPPER, "q")
    await conversations.append("web:b", Role.BOT, "a")
    await conversations.append("web:b", Role.AGENT, "人工回复")
    assert [t.role for t in await conversations.sent_to_shopper("web:b")] == [Role.BOT, Role.AGENT]


async def test_agent_and_system_turns_are_announced_on_the_outbound_stream(store) -> None:
    conversations, redis = store
    await conversations.append("telegram:1", Role.BOT, "bot reply travels in the response")
    agent = await conversations.append("telegram:1", Role.AGENT, "agent reply is pushed")
    rows = await redis.xrange(conv_outbound_key())
    assert [(f["conversation"], f["turn"]) for _, f in rows] == [("telegram:1", agent.id)]
    assert await redis.ttl(conv_transcript_key("telegram:1")) > 0


async def test_analyses_slots_counters_profile_round_trip(store) -> None:
    conversations, _ = store
    analysis = BotAnalysis(at=datetime(2026, 11, 1, tzinfo=UTC), text="定金能退吗", intent="ask_question",
                           intent_confidence=0.91, decision="answer", entry_id="deposit-refund",
                           candidates=[CandidateScore(entry_id="deposit-refund", question="定金可以退吗？", score=0.88)])
    await conversations.record_analysis("web:c", analysis)
    assert await conversations.analyses("web:c") == [analysis]
    await conversations.set_slot("web:c", "order_number", "123456789012345678")
    assert await conversations.slots("web:c") == {"order_number": "123456789012345678"}
    assert await conversations.incr_counter("web:c", "clarify") == 1
    assert await conversations.incr_counter("web:c", "clarify") == 2
    await conversations.reset_counter("web:c", "clarify")
    assert await conversations.incr_counter("web:c", "clarify") == 1
    await conversations.set_profile("web:c", display_name="小王", channel="web")
    assert (await conversations.profile("web:c"))["display_name"] == "小王"


async def test_recent_questions_keep_no_phone_or_id_number(store) -> None:
    conversations, redis = store
    at = datetime.now(UTC)
    text = "我的手机 138 1234 5678，身份证 11010519491231002X，帮我查订单"
    await conversations.record_analysis("web:p", BotAnalysis(at=at, text=text), asked=True)
    assert (await conversations.analyses("web:p"))[0].text == text  # the live ticket keeps it
    stored = " ".join(f["text"] for _, f in await redis.xrange(conv_questions_key()))
    assert "1234 5678" not in stored and "19491231" not in stored and "138****5678" in stored
    recent = await conversations.recent_questions(at - timedelta(minutes=1), 10)
    assert [q.text for q in recent] == ["我的手机 138****5678，身份证 1****************X，帮我查订单"]
