"""The custom actions with real rasa-sdk trackers and dispatchers, real Redis and handoff service.

Only the knowledge service is faked, at the edge the actions call (``decide``, ``entry``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import (
    ActionAnswerQuestion,
    ActionCaptureOrderNumber,
    ActionChooseOption,
    ActionFeedback,
    ActionHandoff,
    ActionKeepWithBot,
    ActionLeaveMessage,
    ActionNoneOfThese,
)
from actions.services import Services
from handoff.models import HandoffReason, Priority
from handoff.service import HandoffService
from kefu.accounts import Presence
from kefu.conversation import utcnow
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


class Chat:
    """One shopper's turns, with the slots each action set carried to the next (as Rasa does)."""

    def __init__(self, services: Services, sender: str = CONV, language: str = "zh") -> None:
        self.services = services
        self.sender = sender
        self.slots: dict[str, Any] = {"language": language}

    async def turn(self, action: Any, text: str, intent: str, confidence: float = 0.9,
                   **kwargs: Any) -> list[dict[str, Any]]:
        t = tracker(text, intent, confidence, slots=dict(self.slots), sender=self.sender, **kwargs)
        messages, events = await run(action(self.services), t)
        self.slots.update(slot_values(events))
        return messages


async def agent_online(services: Services, *groups: str) -> None:
    """An agent of ``groups`` at the console, so handoffs are taken now."""
    name = "agent-" + "-".join(groups)
    await services.handoff.agents.add(name, "password-123", list(groups), display_name="小艾")
    await services.handoff.agents.set_presence(name, Presence.ONLINE)


def titles(message: dict[str, Any]) -> list[str]:
    return [b["title"] for b in message.get("buttons") or []]


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


async def test_questions_asked_are_kept_for_the_knowledge_review(services: Services,
                                                                 knowledge: FakeKnowledge) -> None:
    knowledge.answer("啥时候发货啊", SHIP)
    knowledge.clarify("退", [RETURN, REFUND])
    await run(ActionAnswerQuestion(services), tracker("啥时候发货啊", "ask_question"))
    await run(ActionAnswerQuestion(services), tracker("退", "ask_question", sender="web:bob"))
    await run(ActionFeedback(services), tracker("/feedback_helpful", "feedback_helpful", 1.0))
    recent = await services.conversations.recent_questions(utcnow() - timedelta(days=7), 10)
    assert [(q.text, q.conversation_id) for q in recent] == [("退", "web:bob"),
                                                              ("啥时候发货啊", CONV)]


async def test_english_question_gets_english_buttons(services: Services,
                                                     knowledge: FakeKnowledge) -> None:
    knowledge.answer("when do you ship", SHIP)
    messages, _ = await run(ActionAnswerQuestion(services), tracker("when do you ship", "ask_question"))
    assert [b["title"] for b in messages[0]["buttons"]] == ["Helpful 👍", "Not helpful 👎"]


async def test_clarify_asks_with_at_most_three_options_and_a_way_out(
        services: Services, knowledge: FakeKnowledge) -> None:
    knowledge.clarify("退", [RETURN, REFUND, INVOICE, SHIP])
    messages, events = await run(ActionAnswerQuestion(services), tracker("退", "nlu_fallback", 0.4))

    assert messages[0]["text"] == "您是想问下面哪一个？"
    assert messages[0]["buttons"] == [
        {"title": "怎么退货", "payload": '/choose_option{"entry_id":"return-policy"}'},
        {"title": "退款多久到账", "payload": '/choose_option{"entry_id":"refund-time"}'},
        {"title": "怎么开发票", "payload": '/choose_option{"entry_id":"invoice"}'},
        {"title": "都不是", "payload": "/none_of_these"},
        {"title": "转人工", "payload": "/request_human"},
    ]
    remembered = slot_values(events)["clarify_options"]
    assert [o["entry_id"] for o in remembered] == ["return-policy", "refund-time", "invoice"]
    assert remembered[1]["answer"] == REFUND.answer
    [analysis] = await services.conversations.analyses(CONV)
    assert analysis.decision == "clarify" and analysis.intent == "nlu_fallback"
    escalations = await services.redis.xrange(kb_escalations_key())
    assert [(f["text"], f["reason"]) for _id, f in escalations] == [("退", "low_confidence")]


async def test_english_clarification_offers_none_of_these(services: Services,
                                                          knowledge: FakeKnowledge) -> None:
    knowledge.clarify("refund?", [RETURN, REFUND])
    messages, _ = await run(ActionAnswerQuestion(services), tracker("refund?", "ask_question"))
    assert messages[0]["text"] == "Which of these did you mean?"
    assert titles(messages[0])[-2:] == ["None of these", "Talk to a person"]


async def test_second_clarification_on_the_same_topic_hands_off(services: Services,
                                                                knowledge: FakeKnowledge) -> None:
    await agent_online(services, "aftersale")
    knowledge.clarify("退", [RETURN, REFUND])
    knowledge.clarify("退钱", [REFUND, INVOICE])  # a rephrase: the options overlap
    chat = Chat(services)
    await chat.turn(ActionAnswerQuestion, "退", "ask_question", 0.5)
    assert await services.handoff.open_ticket(CONV) is None

    messages = await chat.turn(ActionAnswerQuestion, "退钱", "ask_question", 0.5)

    ticket = await services.handoff.open_ticket(CONV)
    assert ticket is not None and ticket.reason is HandoffReason.REPEATED_FAILURE
    assert ticket.group == "aftersale"
    assert ticket.context.summary == "退钱 · 2 次澄清未解决"
    assert messages == []  # said through the transcript, before the queue status
    assert await told_handing_off(services) == "抱歉一直没能解决您的问题，已为您转接人工客服，请稍候。"
    assert chat.slots["stuck_on"] is None  # a fresh start once back with the bot


async def test_a_new_question_after_a_clarification_is_tried_not_handed_off(
        services: Services, knowledge: FakeKnowledge) -> None:
    await agent_online(services, "aftersale", "logistics")
    knowledge.clarify("退", [RETURN, REFUND])
    knowledge.clarify("快递到哪了", [SHIP, candidate("tracking", "怎么查物流", "…", Category.LOGISTICS, 0.6)])
    knowledge.answer("开发票", INVOICE)
    chat = Chat(services)
    await chat.turn(ActionAnswerQuestion, "退", "ask_question", 0.5)
    # the shopper ignores the buttons and asks the next thing: clarified, not handed off
    second = await chat.turn(ActionAnswerQuestion, "快递到哪了", "ask_question", 0.5)
    assert second[0]["text"] == "您是想问下面哪一个？"
    assert titles(second[0])[0] == "什么时候发货"
    assert chat.slots["stuck_on"] == {"entries": ["ship-time", "tracking"],
                                      "failures": ["clarified"], "question": "快递到哪了"}
    # and the one after that is answered
    third = await chat.turn(ActionAnswerQuestion, "开发票", "ask_question")
    assert third[0]["text"] == INVOICE.answer
    assert chat.slots["stuck_on"] is None
    assert await services.handoff.open_ticket(CONV) is None


async def test_an_answer_on_another_topic_starts_afresh(services: Services,
                                                        knowledge: FakeKnowledge) -> None:
    knowledge.clarify("退", [RETURN, REFUND])
    knowledge.answer("什么时候发货", SHIP)
    chat = Chat(services)
    for text in ("退", "什么时候发货", "退"):
        await chat.turn(ActionAnswerQuestion, text, "ask_question")
    assert await services.handoff.open_ticket(CONV) is None
    assert await told(services) == []


async def test_unknown_question_hands_off_to_the_category_group(services: Services,
                                                                knowledge: FakeKnowledge) -> None:
    await agent_online(services, "logistics")
    knowledge.handoff("我的快递被狗叼走了", [candidate("lost", "快递丢了", "…", Category.LOGISTICS, 0.2)])
    messages, events = await run(ActionAnswerQuestion(services),
                                 tracker("我的快递被狗叼走了", "ask_question", 0.6))

    ticket = await services.handoff.open_ticket(CONV)
    assert ticket is not None
    assert (ticket.reason, ticket.group, ticket.priority, ticket.channel) == \
        (HandoffReason.LOW_CONFIDENCE, "logistics", Priority.NORMAL, "web")
    assert ticket.context.summary == "我的快递被狗叼走了 · 机器人无法回答"
    assert messages == []
    assert await told_handing_off(services) == "这个问题我暂时无法准确回答，已为您转接人工客服，请稍候。"
    assert slot_values(events)["last_decision"] == "handoff"
    assert ticket.context.language == "zh"


async def test_knowledge_failure_still_reaches_a_person(services: Services,
                                                         knowledge: FakeKnowledge) -> None:
    await agent_online(services, "presale")
    knowledge.fail = True
    messages, _ = await run(ActionAnswerQuestion(services), tracker("how do i return this", "ask_question"))
    assert messages == []
    ticket = await services.handoff.open_ticket(CONV)
    assert ticket is not None and ticket.reason is HandoffReason.LOW_CONFIDENCE
    assert (await told_handing_off(services)).startswith("I can't answer that reliably")
    assert ticket.context.language == "en"


@pytest.mark.parametrize("text", [
    "我的订单 2026112012345 到哪了", "订单号 2026-1120-1234-5 什么时候发货",
    "单号 2026 1120 1234 5 还没发货",
])
async def test_an_order_number_typed_in_a_question_is_kept_for_agents(
        services: Services, knowledge: FakeKnowledge, text: str) -> None:
    knowledge.answer(text, SHIP)
    _messages, events = await run(ActionAnswerQuestion(services), tracker(text, "ask_question"))
    assert await services.conversations.slots(CONV) == {"order_number": "2026112012345"}
    assert slot_values(events)["order_number"] == "2026112012345"


# --- choose_option and "none of these" -----------------------------------------------------


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


async def test_none_of_these_offers_to_rephrase_or_a_person(services: Services,
                                                            knowledge: FakeKnowledge) -> None:
    await agent_online(services, "aftersale")
    knowledge.clarify("退", [RETURN, REFUND])
    knowledge.clarify("我想退那个钱", [REFUND, INVOICE])
    chat = Chat(services)
    await chat.turn(ActionAnswerQuestion, "退", "ask_question", 0.5)
    [reply] = await chat.turn(ActionNoneOfThese, "/none_of_these", "none_of_these", 1.0)
    assert reply["text"] == "好的，看来我没理解对。您可以换个说法再问一次，或者转人工客服。"
    assert reply["buttons"] == [{"title": "转人工", "payload": "/request_human"}]
    assert chat.slots["clarify_options"] is None
    assert await services.handoff.open_ticket(CONV) is None
    escalations = await services.redis.xrange(kb_escalations_key())
    assert ("退", "none_fit") in [(f["text"], f["reason"]) for _id, f in escalations]
    # the rephrase lands on the same topic again: now a person takes over
    await chat.turn(ActionAnswerQuestion, "我想退那个钱", "ask_question", 0.5)
    ticket = await services.handoff.open_ticket(CONV)
    assert ticket is not None and ticket.reason is HandoffReason.REPEATED_FAILURE


# --- feedback ------------------------------------------------------------------------------


async def test_helpful_feedback_thanks(services: Services) -> None:
    messages, _ = await run(ActionFeedback(services), tracker(
        "/feedback_helpful", "feedback_helpful", 1.0, slots={"last_entry_id": "ship-time"}))
    assert messages[0]["text"].startswith("很高兴能帮到您")
    [analysis] = await services.conversations.analyses(CONV)
    assert (analysis.decision, analysis.entry_id) == ("feedback_helpful", "ship-time")


async def test_not_helpful_twice_on_one_answer_hands_off(services: Services) -> None:
    await agent_online(services, "logistics")
    chat = Chat(services, language="en")
    chat.slots.update({"last_entry_id": "ship-time", "last_category": "logistics",
                       "last_question": "啥时候发货"})

    first = await chat.turn(ActionFeedback, "/feedback_not_helpful", "feedback_not_helpful", 1.0)
    assert first[0]["text"].startswith("Sorry that didn't help")
    assert first[0]["buttons"] == [{"title": "Talk to a person", "payload": "/request_human"}]
    assert await services.handoff.open_ticket(CONV) is None

    second = await chat.turn(ActionFeedback, "/feedback_not_helpful", "feedback_not_helpful", 1.0)
    ticket = await services.handoff.open_ticket(CONV)
    assert ticket is not None
    assert (ticket.reason, ticket.group) == (HandoffReason.REPEATED_FAILURE, "logistics")
    assert ticket.context.summary.endswith("2 次回答没帮助")
    assert second == []
    assert (await told_handing_off(services)).startswith("Sorry I couldn't sort this out")
    escalations = await services.redis.xrange(kb_escalations_key())
    assert [(f["text"], f["reason"]) for _id, f in escalations] == \
        [("啥时候发货", "not_helpful")] * 2


async def test_not_helpful_on_two_different_answers_does_not_hand_off(
        services: Services, knowledge: FakeKnowledge) -> None:
    knowledge.answer("发货", SHIP)
    knowledge.answer("发票", INVOICE)
    chat = Chat(services)
    for question in ("发货", "发票"):
        await chat.turn(ActionAnswerQuestion, question, "ask_question")
        await chat.turn(ActionFeedback, "/feedback_not_helpful", "feedback_not_helpful", 1.0)
    assert await services.handoff.open_ticket(CONV) is None


async def test_helpful_in_between_clears_the_topic(services: Services) -> None:
    chat = Chat(services)
    chat.slots.update({"last_entry_id": "ship-time"})
    for intent in ("feedback_not_helpful", "feedback_helpful", "feedback_not_helpful"):
        await chat.turn(ActionFeedback, f"/{intent}", intent, 1.0)
    assert await services.handoff.open_ticket(CONV) is None


# --- handoff -------------------------------------------------------------------------------


async def test_request_human_opens_one_ticket(services: Services) -> None:
    await agent_online(services, "presale")
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


async def test_nobody_online_the_shopper_is_asked_before_being_moved(
        services: Services, knowledge: FakeKnowledge) -> None:
    knowledge.clarify("退", [RETURN, REFUND])
    knowledge.clarify("退钱", [REFUND, INVOICE])
    chat = Chat(services)
    await chat.turn(ActionAnswerQuestion, "退", "ask_question", 0.5)
    [choice] = await chat.turn(ActionAnswerQuestion, "退钱", "ask_question", 0.5)

    assert choice["text"] == ("现在售后客服都不在线，转过去要等客服上线后才能回复。"
                              "您可以先留言，客服上线后回复您；也可以继续问我。")
    assert choice["buttons"] == [{"title": "留言给客服", "payload": "/leave_message"},
                                 {"title": "继续问智能助手", "payload": "/keep_with_bot"}]
    assert await services.handoff.open_ticket(CONV) is None  # not moved yet
    assert chat.slots["pending_handoff"]["reason"] == "repeated_failure"

    messages = await chat.turn(ActionLeaveMessage, "/leave_message", "leave_message", 1.0)
    ticket = await services.handoff.open_ticket(CONV)
    assert ticket is not None and ticket.offline
    assert (ticket.reason, ticket.group) == (HandoffReason.REPEATED_FAILURE, "aftersale")
    assert ticket.context.summary == "退钱 · 2 次澄清未解决"
    assert messages == []
    assert (await told(services))[-1].startswith("当前暂无客服在线。请直接留言")


async def test_nobody_online_the_shopper_may_keep_on_with_the_bot(services: Services) -> None:
    chat = Chat(services, language="en")
    [choice] = await chat.turn(ActionHandoff, "talk to a person", "request_human", 0.95)
    assert titles(choice) == ["Leave a message", "Keep asking the assistant"]
    [reply] = await chat.turn(ActionKeepWithBot, "/keep_with_bot", "keep_with_bot", 1.0)
    assert reply["text"] == "Sure, I'm still here. Try asking me in other words."
    assert chat.slots["pending_handoff"] is None and chat.slots["stuck_on"] is None
    assert await services.handoff.open_ticket(CONV) is None


async def test_complaint_jumps_the_queue_to_aftersale(services: Services) -> None:
    await agent_online(services, "aftersale")
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


async def test_a_sixteen_digit_order_number_with_dashes_is_taken(services: Services) -> None:
    messages, events = await run(ActionCaptureOrderNumber(services),
                                 tracker("1234-5678-9012-3456", "give_order_number"))
    assert slot_values(events) == {"order_number": "1234567890123456"}
    assert "1234567890123456" in messages[0]["text"]


async def test_missing_order_number_is_asked_again(services: Services) -> None:
    messages, events = await run(ActionCaptureOrderNumber(services),
                                 tracker("my order number is 123", "give_order_number"))
    assert messages[0]["text"].startswith("I couldn't find an order number")
    assert events == [] and await services.conversations.slots(CONV) == {}
