"""The custom actions with real rasa-sdk trackers and dispatchers, real Redis and handoff service.

Only the knowledge service is faked, at the edge the actions call (``decide``, ``entry``).
"""

from __future__ import annotations

from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.actions import (
    ActionAnswerQuestion,
    ActionCaptureOrderNumber,
    ActionChooseOption,
    ActionFeedback,
    ActionHandoff,
)
from actions.services import Services
from handoff.models import HandoffReason, Priority
from handoff.service import HandoffService
from kefu.keys import kb_escalations_key
from kefu.redis import async_client
from knowledge.models import Category
from tests.actions.fakes import INVOICE, REFUND, RETURN, SHIP, FakeKnowledge, candidate

pytestmark = pytest.mark.redis

CONV = "web:alice"


def tracker(text: str, intent: str, confidence: float = 0.93, *,
            entities: list[dict[str, Any]] | None = None, slots: dict[str, Any] | None = None,
            sender: str = CONV, original: str | None = None) -> Tracker:
    latest = {
        "text": text,
        "intent": {"name": intent, "confidence": confidence},
        "entities": entities or [],
        "metadata": {"channel": sender.split(":")[0], "original_text": original or text},
    }
    return Tracker(sender, {"language": "zh", **(slots or {})}, latest, [], False, None, {},
                   "action_listen")


def entity(name: str, value: str) -> dict[str, Any]:
    return {"entity": name, "value": value, "start": 0, "end": len(value)}


async def run(action: Any, t: Tracker) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, t, {})
    return dispatcher.messages, events


def slot_values(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e["value"] for e in events if e["event"] == "slot"}


async def told(services: Services, conv: str = CONV) -> list[str]:
    """What the shopper was sent, in transcript order (a handoff writes there, not via Rasa)."""
    return [t.text for t in await services.conversations.sent_to_shopper(conv, None)]


async def told_handing_off(services: Services, conv: str = CONV) -> str:
    """The bot's handoff message, checked to come before the queue status the service sends."""
    texts = await told(services, conv)
    assert len(texts) >= 2, texts
    status = texts[-1]  # position and wait, or "no one online, leave a message"
    assert "客服" in status or "agent" in status.lower() or "team" in status.lower(), texts
    return texts[-2]


# --- answer_question -----------------------------------------------------------------------


async def test_answer_utters_the_entry_with_feedback_buttons(services: Services,
                                                             knowledge: FakeKnowledge) -> None:
    knowledge.answer("啥时候发货啊", SHIP)
    messages, events = await run(ActionAnswerQuestion(services), tracker("啥时候发货啊", "ask_question", 0.87))

    assert [m["text"] for m in messages] == ["付款后48小时内发货。"]
    assert messages[0]["buttons"] == [
        {"title": "有帮助 👍", "payload": "/feedback_helpful"},
        {"title": "没帮助 👎", "payload": "/feedback_not_helpful"},
    ]
    assert knowledge.requests == [{"text": "啥时候发货啊", "intent": "ask_question",
                             "intent_confidence": 0.87}]
    slots = slot_values(events)
    assert (slots["last_entry_id"], slots["last_category"], slots["last_decision"]) == \
        ("ship-time", "logistics", "answer")
    [analysis] = await services.conversations.analyses(CONV)
    assert (analysis.decision, analysis.entry_id, analysis.category) == \
        ("answer", "ship-time", "logistics")
    assert (analysis.intent, analysis.intent_confidence) == ("ask_question", 0.87)
    assert [(c.entry_id, c.score) for c in analysis.candidates] == \
        [("ship-time", 0.91), ("invoice", 0.55)]


async def test_english_question_gets_english_buttons(services: Services,
                                                     knowledge: FakeKnowledge) -> None:
    knowledge.answer("when do you ship", SHIP)
    messages, _ = await run(ActionAnswerQuestion(services), tracker("when do you ship", "ask_question"))
    assert [b["title"] for b in messages[0]["buttons"]] == ["Helpful 👍", "Not helpful 👎"]


async def test_clarify_offers_at_most_three_options(services: Services,
                                                    knowledge: FakeKnowledge) -> None:
    knowledge.clarify("退", [RETURN, REFUND, INVOICE, SHIP])
    messages, events = await run(ActionAnswerQuestion(services), tracker("退", "nlu_fallback", 0.4))

    assert messages[0]["text"] == "您想问的是："
    assert messages[0]["buttons"] == [
        {"title": "怎么退货", "payload": '/choose_option{"entry_id":"return-policy"}'},
        {"title": "退款多久到账", "payload": '/choose_option{"entry_id":"refund-time"}'},
        {"title": "怎么开发票", "payload": '/choose_option{"entry_id":"invoice"}'},
    ]
    remembered = slot_values(events)["clarify_options"]
    assert [o["entry_id"] for o in remembered] == ["return-policy", "refund-time", "invoice"]
    assert remembered[1]["answer"] == REFUND.answer
    [analysis] = await services.conversations.analyses(CONV)
    assert analysis.decision == "clarify" and analysis.intent == "nlu_fallback"
    escalations = await services.redis.xrange(kb_escalations_key())
    assert [(f["text"], f["reason"]) for _id, f in escalations] == [("退", "low_confidence")]


async def test_second_clarification_in_a_row_hands_off(services: Services,
                                                       knowledge: FakeKnowledge) -> None:
    knowledge.clarify("退", [RETURN, REFUND])
    knowledge.clarify("退钱", [RETURN, REFUND])
    await run(ActionAnswerQuestion(services), tracker("退", "ask_question", 0.5))
    assert await services.handoff.open_ticket(CONV) is None

    messages, _ = await run(ActionAnswerQuestion(services), tracker("退钱", "ask_question", 0.5))

    ticket = await services.handoff.open_ticket(CONV)
    assert ticket is not None and ticket.reason is HandoffReason.REPEATED_FAILURE
    assert ticket.group == "aftersale"
    assert messages == []  # said through the transcript, before the queue status
    assert await told_handing_off(services) == "抱歉一直没能解决您的问题，已为您转接人工客服，请稍候。"


async def test_an_answer_resets_the_clarification_streak(services: Services,
                                                         knowledge: FakeKnowledge) -> None:
    knowledge.clarify("退", [RETURN, REFUND])
    knowledge.answer("什么时候发货", SHIP)
    for text in ("退", "什么时候发货", "退"):
        await run(ActionAnswerQuestion(services), tracker(text, "ask_question"))
    assert await services.handoff.open_ticket(CONV) is None


async def test_unknown_question_hands_off_to_the_category_group(services: Services,
                                                                knowledge: FakeKnowledge) -> None:
    knowledge.handoff("我的快递被狗叼走了", [candidate("lost", "快递丢了", "…", Category.LOGISTICS, 0.2)])
    messages, events = await run(ActionAnswerQuestion(services),
                                 tracker("我的快递被狗叼走了", "ask_question", 0.6))

    ticket = await services.handoff.open_ticket(CONV)
    assert ticket is not None
    assert (ticket.reason, ticket.group, ticket.priority, ticket.channel) == \
        (HandoffReason.LOW_CONFIDENCE, "logistics", Priority.NORMAL, "web")
    assert messages == []
    assert await told_handing_off(services) == "这个问题我暂时无法准确回答，已为您转接人工客服，请稍候。"
    assert slot_values(events)["last_decision"] == "handoff"
    assert ticket.context.language == "zh"


async def test_knowledge_failure_still_reaches_a_person(services: Services,
                                                         knowledge: FakeKnowledge) -> None:
    knowledge.fail = True
    messages, _ = await run(ActionAnswerQuestion(services), tracker("how do i return this", "ask_question"))
    assert messages == []
    ticket = await services.handoff.open_ticket(CONV)
    assert ticket is not None and ticket.reason is HandoffReason.LOW_CONFIDENCE
    assert (await told_handing_off(services)).startswith("I can't answer that reliably")
    assert ticket.context.language == "en"


async def test_order_number_in_a_question_is_kept_for_agents(services: Services,
                                                             knowledge: FakeKnowledge) -> None:
    text = "订单123456789012345678什么时候发货"
    knowledge.answer(text, SHIP)
    await run(ActionAnswerQuestion(services), tracker(
        text, "ask_question", entities=[entity("order_number", "123456789012345678")]))
    assert await services.conversations.slots(CONV) == {"order_number": "123456789012345678"}


# --- choose_option -------------------------------------------------------------------------


def clarified_slots() -> dict[str, Any]:
    return {"clarify_options": [
        {"entry_id": c.entry_id, "question": c.question, "answer": c.answer,
         "category": c.category.value} for c in (RETURN, REFUND)],
        "last_question": "退"}


async def test_choose_option_answers_from_the_remembered_options(services: Services,
                                                                 knowledge: FakeKnowledge) -> None:
    t = tracker('/choose_option{"entry_id":"refund-time"}', "choose_option", 1.0,
                entities=[entity("entry_id", "refund-time")], slots=clarified_slots())
    messages, events = await run(ActionChooseOption(services), t)

    assert messages[0]["text"] == REFUND.answer
    assert messages[0]["buttons"][0]["payload"] == "/feedback_helpful"
    slots = slot_values(events)
    assert (slots["last_entry_id"], slots["last_category"], slots["clarify_options"]) == \
        ("refund-time", "payment", None)
    assert knowledge.requests == []  # no round trip needed
    [analysis] = await services.conversations.analyses(CONV)
    assert (analysis.decision, analysis.entry_id, analysis.intent) == \
        ("answer", "refund-time", "choose_option")


async def test_choose_option_by_typed_ordinal(services: Services) -> None:
    t = tracker("第二个", "choose_option", 0.8, slots=clarified_slots())
    messages, _ = await run(ActionChooseOption(services), t)
    assert messages[0]["text"] == REFUND.answer


async def test_choose_option_fetches_an_entry_it_does_not_remember(services: Services) -> None:
    t = tracker('/choose_option{"entry_id":"invoice"}', "choose_option", 1.0,
                entities=[entity("entry_id", "invoice")])
    messages, events = await run(ActionChooseOption(services), t)
    assert messages[0]["text"] == INVOICE.answer
    assert slot_values(events)["last_entry_id"] == "invoice"


async def test_choose_option_for_a_vanished_entry_asks_again(services: Services) -> None:
    t = tracker('/choose_option{"entry_id":"gone"}', "choose_option", 1.0,
                entities=[entity("entry_id", "gone")])
    messages, events = await run(ActionChooseOption(services), t)
    assert messages[0]["text"].startswith("抱歉，没有找到这个选项")
    assert events == []


# --- feedback ------------------------------------------------------------------------------


async def test_helpful_feedback_thanks(services: Services) -> None:
    messages, _ = await run(ActionFeedback(services), tracker(
        "/feedback_helpful", "feedback_helpful", 1.0, slots={"last_entry_id": "ship-time"}))
    assert messages[0]["text"].startswith("很高兴能帮到您")
    [analysis] = await services.conversations.analyses(CONV)
    assert (analysis.decision, analysis.entry_id) == ("feedback_helpful", "ship-time")


async def test_not_helpful_offers_a_person_then_hands_off(services: Services) -> None:
    slots = {"last_entry_id": "ship-time", "last_category": "logistics",
             "last_question": "啥时候发货", "language": "en"}
    t = tracker("/feedback_not_helpful", "feedback_not_helpful", 1.0, slots=slots)

    first, _ = await run(ActionFeedback(services), t)
    assert first[0]["text"].startswith("Sorry that didn't help")
    assert first[0]["buttons"] == [{"title": "Talk to a person", "payload": "/request_human"}]
    assert await services.handoff.open_ticket(CONV) is None

    second, _ = await run(ActionFeedback(services), t)
    ticket = await services.handoff.open_ticket(CONV)
    assert ticket is not None
    assert (ticket.reason, ticket.group) == (HandoffReason.REPEATED_FAILURE, "logistics")
    assert second == []
    assert (await told_handing_off(services)).startswith("Sorry I couldn't sort this out")
    escalations = await services.redis.xrange(kb_escalations_key())
    assert [(f["text"], f["reason"]) for _id, f in escalations] == \
        [("啥时候发货", "not_helpful")] * 2


async def test_helpful_in_between_resets_the_not_helpful_streak(services: Services) -> None:
    def t(intent: str) -> Tracker:
        return tracker(f"/{intent}", intent, 1.0, slots={"last_entry_id": "ship-time"})

    for intent in ("feedback_not_helpful", "feedback_helpful", "feedback_not_helpful"):
        await run(ActionFeedback(services), t(intent))
    assert await services.handoff.open_ticket(CONV) is None


# --- handoff -------------------------------------------------------------------------------


async def test_request_human_opens_one_ticket(services: Services) -> None:
    t = tracker("转人工", "request_human", 0.98, slots={"order_number": "E2026011512345678",
                                                         "last_category": "presale"})
    messages, _ = await run(ActionHandoff(services), t)
    again, _ = await run(ActionHandoff(services), t)

    ticket = await services.handoff.open_ticket(CONV)
    assert ticket is not None
    assert (ticket.reason, ticket.priority, ticket.group) == \
        (HandoffReason.EXPLICIT_REQUEST, Priority.NORMAL, "presale")
    assert ticket.context.order_number == "E2026011512345678"
    assert len(await services.handoff.list_tickets()) == 1
    assert messages == again == []
    texts = await told(services)
    assert texts[0] == "好的，马上为您转接人工客服，请稍候。"  # first, then the queue status
    assert texts.count("好的，马上为您转接人工客服，请稍候。") == 2 and len(texts) == 3


async def test_complaint_jumps_the_queue_to_aftersale(services: Services) -> None:
    t = tracker("refund still not here, this is ridiculous", "complain", 0.9,
                sender="telegram:42", slots={"last_category": "logistics"})
    messages, _ = await run(ActionHandoff(services), t)
    ticket = await services.handoff.open_ticket("telegram:42")
    assert ticket is not None
    assert (ticket.reason, ticket.priority, ticket.group, ticket.channel) == \
        (HandoffReason.COMPLAINT, Priority.HIGH, "aftersale", "telegram")
    assert messages == []
    assert (await told_handing_off(services, "telegram:42")).startswith("I'm very sorry")
    [analysis] = await services.conversations.analyses("telegram:42")
    assert (analysis.intent, analysis.decision) == ("complain", "handoff")


async def test_handoff_failure_is_told_not_raised(services: Services) -> None:
    unreachable = async_client("redis://127.0.0.1:1/0")
    broken = Services(knowledge=services.knowledge, conversations=services.conversations,
                      handoff=HandoffService(unreachable, services.conversations),
                      redis=services.redis)
    try:
        messages, events = await run(ActionHandoff(broken), tracker("转人工", "request_human"))
    finally:
        await unreachable.aclose()
    assert messages[0]["text"] == "抱歉，暂时无法转接人工客服，请稍后再试。"
    assert events == []


# --- order number and language -------------------------------------------------------------


async def test_order_number_is_stored_and_acknowledged(services: Services) -> None:
    t = tracker("订单号E2026011512345678", "give_order_number",
                entities=[entity("order_number", "E2026011512345678")])
    messages, events = await run(ActionCaptureOrderNumber(services), t)
    assert messages[0]["text"] == \
        "好的，已记录您的订单号 E2026011512345678。请问这个订单有什么问题？"
    assert slot_values(events) == {"order_number": "E2026011512345678"}
    assert await services.conversations.slots(CONV) == {"order_number": "E2026011512345678"}


async def test_missing_order_number_is_asked_again(services: Services) -> None:
    messages, events = await run(ActionCaptureOrderNumber(services),
                                 tracker("my order number is 123", "give_order_number"))
    assert messages[0]["text"].startswith("I couldn't find an order number")
    assert events == [] and await services.conversations.slots(CONV) == {}
