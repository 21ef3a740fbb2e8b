"""Learning from escalations: recording, reading (stream and tickets), grouping, and the loop back
into a published entry that answers the next such question."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import redis.asyncio as aioredis

from handoff.models import HandoffReason
from handoff.service import HandoffService
from handoff.settings import HandoffSettings
from kefu.accounts import AgentRole
from kefu.conversation import ConversationStore, Role, Turn
from kefu.escalations import EscalationReason, record_escalation
from kefu.keys import kb_escalations_key
from knowledge.curation.admin import AdminService
from knowledge.curation.topics import (
    Escalation,
    EscalationLog,
    agent_replies_after,
    average_linkage,
    group_topics,
)
from knowledge.errors import TopicNotFound, ValidationFailed
from knowledge.models import Category, DecisionKind, Entry, KnowledgeBase
from knowledge.runtime import KnowledgeRuntime
from knowledge.settings import KnowledgeSettings
from knowledge.store import KnowledgeStore
from tests.helpers.e5_model import e5_encoder
from tests.knowledge.fakes import HashingEncoder

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def esc(n: int, text: str, conversation: str, *, minutes: int = 0,
        replies: tuple[str, ...] = (), reason: EscalationReason = EscalationReason.HANDOFF
        ) -> Escalation:
    return Escalation(id=f"{n}-0", text=text, reason=reason, conversation_id=conversation,
                      at=T0 + timedelta(minutes=minutes or n), agent_replies=list(replies))


# --- pure -------------------------------------------------------------------------------------


def test_average_linkage_merges_only_groups_close_on_average() -> None:
    a = np.array([1.0, 0.0, 0.0])
    b = np.array([0.96, 0.28, 0.0])  # cos(a, b) = 0.96
    c = np.array([0.8, 0.6, 0.0])  # cos(a, c) = 0.8, cos(b, c) = 0.936
    d = np.array([0.0, 0.0, 1.0])
    vectors = np.stack([a, b, c, d]).astype(np.float32)
    assert average_linkage(vectors, 0.95) == [[0, 1], [2], [3]]
    # at 0.85, c joins {a, b}: its average cosine to them is (0.8 + 0.936) / 2 = 0.868
    assert sorted(average_linkage(vectors, 0.85)) == [[0, 1, 2], [3]]
    assert sorted(average_linkage(vectors, 0.01)) == [[0, 1, 2], [3]]  # d is orthogonal (0)
    assert average_linkage(vectors[:1], 0.9) == [[0]]


def test_agent_replies_are_those_after_the_question_until_the_bot_speaks() -> None:
    def turn(minute: int, role: Role, text: str) -> Turn:
        return Turn(role=role, text=text, at=T0 + timedelta(minutes=minute))

    transcript = [
        turn(0, Role.AGENT, "上一次会话的回复"),
        turn(1, Role.SHOPPER, "能礼品包装吗"),
        turn(1, Role.BOT, "正在为您转接人工客服"),
        turn(2, Role.SYSTEM, "您前面还有 1 位"),
        turn(3, Role.AGENT, "您好"),
        turn(4, Role.AGENT, "可以的，下单备注礼品包装"),
        turn(5, Role.BOT, "还有什么可以帮您"),
        turn(6, Role.AGENT, "later"),
    ]
    assert agent_replies_after(transcript, T0 + timedelta(minutes=1)) == [
        "您好", "可以的，下单备注礼品包装"]


def test_topics_need_several_conversations_and_keep_examples_and_counts() -> None:
    escalations = [
        esc(1, "可以礼品包装吗", "web:a", replies=("可以，备注礼品包装",)),
        esc(2, "可以礼品包装吗？", "web:b", reason=EscalationReason.LOW_CONFIDENCE),
        esc(3, "能礼品包装吗", "web:c"),
        esc(4, "可以礼品包装吗", "web:c"),
        esc(5, "你们老板是谁", "web:d"),
        esc(6, "你们老板是谁", "web:d"),
    ]
    topics = group_topics(escalations, HashingEncoder(), similarity=0.5)
    (topic,) = topics  # "老板" was asked in one conversation only
    assert topic.count == 4 and topic.conversations == 3
    assert topic.examples[0] == "可以礼品包装吗"  # the most frequent wording first
    assert set(topic.examples) == {"可以礼品包装吗", "能礼品包装吗"}
    assert topic.reasons == {"handoff": 3, "low_confidence": 1}
    assert topic.agent_replies == ["可以，备注礼品包装"]
    assert topic.first_at == escalations[0].at and topic.last_at == escalations[3].at
    assert sorted(topic.escalation_ids) == ["1-0", "2-0", "3-0", "4-0"]
    # the id stays while the oldest escalation stays in the topic
    later = group_topics([*escalations, esc(9, "能不能礼品包装", "web:e")], HashingEncoder(),
                         similarity=0.5)
    assert later[0].id == topic.id and later[0].count == 5
    singles = group_topics(escalations, HashingEncoder(), similarity=0.5, min_conversations=1)
    assert len(singles) == 2
    assert group_topics([], HashingEncoder()) == []


# --- Redis: the stream and tickets ------------------------------------------------------------


@pytest.mark.redis
async def test_record_and_read_escalations_with_agent_replies(client: aioredis.Redis) -> None:
    conversations = ConversationStore(client)
    await conversations.append("web:a", Role.SHOPPER, "能礼品包装吗", at=T0)
    stream_id = await record_escalation(client, "能礼品包装吗", "handoff", "web:a", at=T0)
    await conversations.append("web:a", Role.AGENT, "可以的，下单备注", at=T0 + timedelta(minutes=2))
    await record_escalation(client, "这个答案没用", EscalationReason.NOT_HELPFUL, "web:b",
                            at=T0 + timedelta(minutes=5))
    await client.xadd(kb_escalations_key(), {"junk": "1"})  # unreadable: skipped

    log = EscalationLog(client, conversations)
    items = await log.recent()
    assert [(e.id, e.text, e.reason) for e in items] == [
        (stream_id, "能礼品包装吗", EscalationReason.HANDOFF),
        (items[1].id, "这个答案没用", EscalationReason.NOT_HELPFUL),
    ]
    assert items[0].agent_replies == ["可以的，下单备注"] and items[1].agent_replies == []
    assert items[0].at == T0
    with pytest.raises(ValueError):
        await record_escalation(client, "x", "bored", "web:c")

    await log.resolve([stream_id])
    assert [e.text for e in await log.recent()] == ["这个答案没用"]
    assert len(await log.recent(include_resolved=True)) == 2


@pytest.mark.redis
async def test_ticket_questions_count_once_with_their_agent_replies(
    client: aioredis.Redis,
) -> None:
    """A handed-off question is read from the ticket's context packet and the transcript."""
    from kefu.conversation import BotAnalysis, CandidateScore

    conversations = ConversationStore(client)
    settings = HandoffSettings(bcrypt_rounds=4)
    handoff = HandoffService(client, conversations, settings)
    now = datetime.now(UTC)
    await conversations.append("web:t", Role.SHOPPER, "你好", at=now - timedelta(seconds=30))
    await conversations.record_analysis("web:t", BotAnalysis(
        at=now - timedelta(seconds=30), text="你好", intent="greet", decision="greet"))
    await conversations.append("web:t", Role.SHOPPER, "可以开专票吗", at=now - timedelta(seconds=20))
    await conversations.record_analysis("web:t", BotAnalysis(
        at=now - timedelta(seconds=20), text="可以开专票吗", intent="faq", intent_confidence=0.9,
        decision="handoff", candidates=[CandidateScore(entry_id="invoice", question="可以开发票吗",
                                                       score=0.4)]))
    # the gateway also recorded it in the stream: it must be listed once
    await record_escalation(client, "可以开专票吗", "handoff", "web:t", at=now - timedelta(seconds=20))
    ticket = await handoff.request_handoff("web:t", reason=HandoffReason.LOW_CONFIDENCE,
                                           channel="web")
    await handoff.agents.add("amy", "password1", ["presale"], role=AgentRole.AGENT)
    amy = await handoff.agents.get("amy")
    await handoff.claim(ticket.id, amy)
    await handoff.reply(ticket.id, amy, "可以开增值税专用发票，请提供税号")
    await handoff.resolve(ticket.id, amy, return_to_bot=False)

    items = await EscalationLog(client, conversations).recent()
    assert [e.text for e in items] == ["可以开专票吗"]
    assert items[0].conversation_id == "web:t"
    assert items[0].agent_replies == ["可以开增值税专用发票，请提供税号"]


# --- the learning loop with the real model ----------------------------------------------------

GIFT_QUESTIONS = [  # asked by three shoppers; the bot could not answer
    ("web:g1", "可以帮我包装成礼物吗"),
    ("web:g2", "能做礼品包装吗？送人的"),
    ("web:g3", "送朋友的，能包装一下吗"),
]
GIFT_REPLY = "可以的，下单时在备注里写“礼品包装”，我们免费包装并附贺卡。"
NEXT_GIFT_QUESTION = "买来送人的，可以给我包成礼物吗"


def small_store() -> KnowledgeBase:
    def entry(entry_id: str, question: str, variants: tuple[str, ...], answer: str,
              category: Category) -> Entry:
        return Entry(id=entry_id, question=question, variants=variants, answer=answer,
                     category=category)

    return KnowledgeBase(entries=(
        entry("return-policy", "支持七天无理由退货吗", ("可以退货吗", "怎么申请退货", "不想要了能退吗"),
              "支持七天无理由退货，在订单页申请。", Category.AFTERSALE),
        entry("ship-time", "下单后多久发货", ("什么时候发货", "几天能发货", "when will you ship"),
              "付款后48小时内发货。", Category.LOGISTICS),
        entry("invoice", "可以开发票吗", ("怎么开发票", "能开电子发票吗", "do you issue invoices"),
              "可以，在订单详情里申请电子发票。", Category.AFTERSALE),
        entry("pay-methods", "支持哪些付款方式", ("可以用支付宝吗", "能用微信支付吗", "可以刷信用卡吗"),
              "支持支付宝、微信支付和银行卡。", Category.PAYMENT),
        entry("size-guide", "鞋码怎么选", ("尺码偏大还是偏小", "平时穿42买多大", "码数准吗"),
              "尺码标准，按平时的码数买即可。", Category.PRODUCT),
        entry("points", "积分怎么用", ("积分可以抵现吗", "会员积分有什么用", "积分能换东西吗"),
              "100积分抵1元，下单时勾选使用。", Category.ACCOUNT),
    ))


@pytest.mark.redis
@pytest.mark.model
@pytest.mark.slow
async def test_escalations_become_a_topic_whose_draft_answers_the_next_question(
    client: aioredis.Redis, redis_url: str, tmp_path_factory: pytest.TempPathFactory,
) -> None:
    encoder = e5_encoder(tmp_path_factory)
    settings = KnowledgeSettings(redis_url=redis_url, demo_store=tmp_path_factory.mktemp("x") / "none")
    await KnowledgeStore(client).publish(small_store(), author="seed")
    runtime = KnowledgeRuntime(settings, redis=client, encoders=(encoder, None))
    await runtime.start()
    try:
        admin = AdminService(runtime, client, encoder=encoder)
        before = runtime.service.decide(NEXT_GIFT_QUESTION)
        assert before.kind is not DecisionKind.ANSWER  # the bot cannot answer it yet

        conversations = ConversationStore(client)
        now = datetime.now(UTC) - timedelta(hours=1)
        for n, (conversation, question) in enumerate(GIFT_QUESTIONS):
            asked = now + timedelta(minutes=10 * n)
            await conversations.append(conversation, Role.SHOPPER, question, at=asked)
            await record_escalation(client, question, "handoff", conversation, at=asked)
            await conversations.append(conversation, Role.AGENT, "您好，我来帮您看看~",
                                       at=asked + timedelta(minutes=1))
            await conversations.append(conversation, Role.AGENT, GIFT_REPLY,
                                       at=asked + timedelta(minutes=2))
        for conversation, question in (("web:x1", "你们老板是谁"), ("web:x2", "今天天气怎么样"),
                                       ("web:x3", "发票抬头写错了怎么改")):
            await record_escalation(client, question, "low_confidence", conversation, at=now)

        views = await admin.topics()
        (view,) = views  # the other questions were asked once each
        topic = view.topic
        assert topic.conversations == 3 and topic.count == 3
        assert set(topic.examples) == {q for _, q in GIFT_QUESTIONS}
        assert topic.agent_replies[0] == GIFT_REPLY  # the answer, not the greeting
        assert view.live is not None and view.live.kind is not DecisionKind.ANSWER

        with pytest.raises(TopicNotFound):
            await admin.draft_from_topic("t-unknown", author="mgr")
        review = await admin.draft_from_topic(topic.id, author="mgr", category=Category.PRESALE)
        (added,) = review.diff.added
        assert not review.diff.changed and not review.diff.removed
        assert added.after is not None and added.after.answer == GIFT_REPLY
        assert {added.after.question, *added.after.variants} == {q for _, q in GIFT_QUESTIONS}
        assert review.draft.source == "topic" and review.draft.topic_id == topic.id

        result = await admin.publish(review.draft.id, author="mgr")
        await runtime.wait_for_version(result.version.id, timeout=30.0)
        after = runtime.service.decide(NEXT_GIFT_QUESTION)
        assert after.kind is DecisionKind.ANSWER, after.reason
        assert after.entry is not None and after.entry.entry_id == added.entry_id
        assert after.entry.answer == GIFT_REPLY
        # the topic is resolved: it leaves the list
        assert await admin.topics() == []
    finally:
        await runtime.stop()


@pytest.mark.redis
async def test_topic_examples_can_become_variants_of_an_existing_entry(
    client: aioredis.Redis, redis_url: str, tmp_path_factory: pytest.TempPathFactory,
) -> None:
    settings = KnowledgeSettings(redis_url=redis_url, demo_store=tmp_path_factory.mktemp("x") / "none")
    await KnowledgeStore(client).publish(small_store(), author="seed")
    encoder = HashingEncoder()
    runtime = KnowledgeRuntime(settings, redis=client, encoders=(encoder, None))
    admin = AdminService(runtime, client, encoder=encoder, topic_similarity=0.5)
    at = datetime.now(UTC) - timedelta(minutes=5)
    for conversation, text in (("web:v1", "运单号在哪里看"), ("web:v2", "运单号在哪看"),
                               ("web:v3", "可以开发票吗")):
        await record_escalation(client, text, "low_confidence", conversation, at=at)
    views = await admin.topics()
    (topic,) = [v.topic for v in views if "运单号在哪里看" in v.topic.examples]

    review = await admin.draft_from_topic(topic.id, author="mgr", entry_id="ship-time")
    (changed,) = review.diff.changed
    assert changed.entry_id == "ship-time"
    assert set(changed.variants_added) == {"运单号在哪里看", "运单号在哪看"}
    assert not review.diff.added and not review.diff.removed

    with pytest.raises(ValidationFailed) as failed:
        await admin.draft_from_topic(topic.id, author="mgr", entry_id="no-such-entry")
    assert failed.value.problems[0].field == "entry_id"
    with pytest.raises(ValidationFailed) as failed:  # a new entry needs an agent reply or answer
        await admin.draft_from_topic(topic.id, author="mgr", category="logistics")
    assert [p.field for p in failed.value.problems] == ["answer"]
    review = await admin.draft_from_topic(topic.id, author="mgr", answer="在订单详情页查看运单号。",
                                          category="logistics", new_id="waybill")
    assert [c.entry_id for c in review.diff.added] == ["waybill"]
