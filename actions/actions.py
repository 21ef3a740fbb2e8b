"""kefu's Rasa custom actions: tracker in, one service call, dispatcher out.

Which answer fits is the knowledge service's decision (a call: the actions run in the gateway,
beside it); tickets are the handoff service's; the conversation record is
:class:`kefu.conversation.ConversationStore`.
Rules about giving up live in :mod:`actions.policy`, wording in :mod:`actions.replies`.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from redis.exceptions import RedisError

from actions import replies
from actions.errors import KnowledgeUnavailableError
from actions.policy import (
    PENDING_SLOT,
    STUCK_SLOT,
    Failure,
    HandoffPlan,
    Stuck,
    after_answer,
    fail,
    gives_up,
    plan_for_failure,
)
from actions.services import Services
from handoff.errors import HandoffError
from kefu.conversation import BotAnalysis, CandidateScore, Role, utcnow
from kefu.escalations import record_escalation
from kefu.language import Language, detect_language, language_of
from kefu.orders import find_order_number, normalise
from knowledge.models import Candidate, Decision, DecisionKind

logger = logging.getLogger(__name__)

Events = list[dict[str, Any]]


@dataclass(frozen=True)
class Message:
    """The latest shopper message as the actions need it."""

    conversation_id: str  # the Rasa sender id, "{channel}:{chat}"
    channel: str
    text: str  # what NLU saw (normalised by the gateway)
    original: str  # what the shopper typed (metadata ``original_text``)
    intent: str | None
    confidence: float | None
    language: Language
    display_name: str | None


def read_message(tracker: Tracker) -> Message:
    """Pull the latest message, its NLU result and the gateway's metadata out of the tracker."""
    latest: dict[str, Any] = tracker.latest_message or {}
    metadata: dict[str, Any] = latest.get("metadata") or {}
    text = str(latest.get("text") or "")
    original = str(metadata.get("original_text") or text)
    intent: dict[str, Any] = latest.get("intent") or {}
    sender = str(tracker.sender_id)
    confidence = intent.get("confidence")
    language = detect_language(original) or language_of(tracker.get_slot("language"))
    return Message(
        conversation_id=sender,
        channel=str(metadata.get("channel") or sender.split(":", 1)[0]),
        text=text,
        original=original,
        intent=intent.get("name"),
        confidence=float(confidence) if confidence is not None else None,
        language=language,
        display_name=metadata.get("display_name"),
    )


def utter(dispatcher: CollectingDispatcher, reply: replies.Reply) -> None:
    """Send one reply, with its buttons if it has any."""
    if reply.buttons:
        dispatcher.utter_message(text=reply.text, buttons=reply.buttons)
    else:
        dispatcher.utter_message(text=reply.text)


def analysis_of(message: Message, decision: str, *, entry: Candidate | None = None,
              candidates: list[Candidate] | None = None,
              entry_id: str | None = None, category: str | None = None) -> BotAnalysis:
    """What the bot understood of ``message`` and decided, for the agent's context panel."""
    return BotAnalysis(
        at=utcnow(), text=message.original, intent=message.intent,
        intent_confidence=message.confidence, decision=decision,
        entry_id=entry.entry_id if entry else entry_id,
        category=entry.category.value if entry else category,
        candidates=[CandidateScore(entry_id=c.entry_id, question=c.question, score=c.score)
                    for c in candidates or []],
    )


def _answer_events(entry_id: str, category: str | None, question: str,
                   stuck: Stuck | None) -> Events:
    return [
        SlotSet("last_entry_id", entry_id), SlotSet("last_category", category),
        SlotSet("last_question", question), SlotSet("last_decision", DecisionKind.ANSWER.value),
        SlotSet("clarify_options", None), _stuck_event(stuck),
    ]


def stuck_of(tracker: Tracker) -> Stuck | None:
    """The topic the shopper is stuck on, from the ``stuck_on`` slot."""
    return Stuck.from_slot(tracker.get_slot(STUCK_SLOT))


def _stuck_event(stuck: Stuck | None) -> dict[str, Any]:
    return SlotSet(STUCK_SLOT, stuck.to_slot() if stuck else None)  # type: ignore[no-any-return]


async def _record_escalation(services: Services, message: Message, text: str,
                             reason: str) -> None:
    """Best effort: feed the knowledge team's "questions we could not handle" list."""
    try:
        await record_escalation(services.redis, text, reason, message.conversation_id)
    except Exception:  # never fail a shopper's turn for the review list
        logger.exception("could not record an escalation for %s", message.conversation_id)


class KefuAction(Action, ABC):  # type: ignore[misc]
    """Base of kefu's actions: holds the services of the process serving them."""

    def __init__(self, services: Services) -> None:
        self.services = services

    @abstractmethod
    def name(self) -> str:
        """The action's name in the domain."""

    async def hand_off(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                       message: Message, plan: HandoffPlan, *, ask_first: bool = True) -> Events:
        """Move the shopper to a person, or first say nobody is online and let them choose.

        With ``ask_first`` and nobody of the plan's group online (or outside service hours) the
        bot says so and offers "leave a message" or "keep asking the bot"; the plan waits in the
        ``pending_handoff`` slot. Otherwise the ticket is opened (`open_ticket`).
        """
        if ask_first:
            try:
                available = await self.services.handoff.availability(
                    message.conversation_id, plan.group)
            except (HandoffError, RedisError) as exc:
                logger.error("availability unknown for %s: %r", message.conversation_id, exc)
            else:
                if not available.open:
                    utter(dispatcher, replies.nobody_online(
                        available.group, available.in_hours, message.language))
                    return [SlotSet(PENDING_SLOT, plan.to_slot()), SlotSet("clarify_options", None)]
        return await self.open_ticket(dispatcher, tracker, message, plan, tell=ask_first)

    async def open_ticket(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                          message: Message, plan: HandoffPlan, *, tell: bool = True) -> Events:
        """Open (or join) the conversation's ticket; with ``tell`` the shopper hears why first.

        The shopper is told first, straight into the transcript, then the ticket is opened: the
        handoff service follows up with the queue position (or "no one online, leave a message"),
        and a reply uttered through Rasa would only reach the transcript after that.
        """
        services = self.services
        order_number = tracker.get_slot("order_number")
        try:
            await services.conversations.set_profile(
                message.conversation_id, language=message.language.value, channel=message.channel)
            if tell:
                await services.conversations.append(
                    message.conversation_id, Role.BOT,
                    replies.handing_off(plan.reason, message.language).text)
            ticket = await services.handoff.request_handoff(
                message.conversation_id, reason=plan.reason, channel=message.channel,
                group=plan.group, priority=plan.priority, detail=plan.detail,
                slots={"order_number": str(order_number)} if order_number else None,
                display_name=message.display_name)
        except (HandoffError, RedisError) as exc:
            logger.error("handoff failed for %s: %r", message.conversation_id, exc)
            utter(dispatcher, replies.handoff_failed(message.language))
            return []
        logger.info("%s handed off: ticket %s (%s)", message.conversation_id, ticket.id,
                    plan.reason)
        return [SlotSet("last_decision", DecisionKind.HANDOFF.value), SlotSet(STUCK_SLOT, None),
                SlotSet(PENDING_SLOT, None), SlotSet("clarify_options", None)]

    async def remember_order_number(self, tracker: Tracker, message: Message) -> str | None:
        """Keep an order number found in the message, however it was typed, where agents see it."""
        found = find_order_number(message.original)
        if found is None:
            entity = next(tracker.get_latest_entity_values("order_number"), None)
            found = find_order_number(normalise(str(entity))) if entity else None
        if found:
            await self.services.conversations.set_slot(
                message.conversation_id, "order_number", found)
        return found


class ActionAnswerQuestion(KefuAction):
    """A shop question: answer, clarify or hand off, as the knowledge decision says."""

    def name(self) -> str:
        """See base class."""
        return "action_answer_question"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> Events:
        """Ask the knowledge API, record what was understood, reply."""
        message = read_message(tracker)
        order_number = await self.remember_order_number(tracker, message)
        found: Events = [SlotSet("order_number", order_number)] if order_number else []
        conversations = self.services.conversations
        try:
            decision = await self.services.knowledge.decide(
                message.text or message.original, intent=message.intent,
                intent_confidence=message.confidence)
        except KnowledgeUnavailableError as exc:
            logger.error("knowledge decision failed for %s: %s", message.conversation_id, exc)
            await conversations.record_analysis(
                message.conversation_id, analysis_of(message, DecisionKind.HANDOFF.value))
            return found + await self.hand_off(dispatcher, tracker, message,
                                               plan_for_failure(None))
        await conversations.record_analysis(message.conversation_id, analysis_of(
            message, decision.kind.value, entry=decision.entry, candidates=decision.candidates),
            asked=not message.original.startswith("/"))
        if decision.kind is DecisionKind.ANSWER and decision.entry is not None:
            entry = decision.entry
            utter(dispatcher, replies.answer(entry.answer, message.language))
            return found + _answer_events(entry.entry_id, entry.category.value, message.original,
                                          after_answer(stuck_of(tracker), entry.entry_id))
        await _record_escalation(self.services, message, message.original, "low_confidence")
        if decision.kind is DecisionKind.CLARIFY and decision.options:
            return found + await self._clarify(dispatcher, tracker, message, decision)
        return found + await self.hand_off(dispatcher, tracker, message,
                                           plan_for_failure(_top_category(decision)))

    async def _clarify(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                       message: Message, decision: Decision) -> Events:
        """Ask which option was meant; on the same topic a second time, a person takes over."""
        options = decision.options[: replies.MAX_OPTIONS]
        stuck = fail(stuck_of(tracker), Failure.CLARIFIED, [o.entry_id for o in options],
                     message.original)
        if gives_up(stuck):
            return await self.hand_off(dispatcher, tracker, message,
                                       plan_for_failure(_top_category(decision), stuck))
        utter(dispatcher, replies.clarify(options, message.language))
        remembered = [{"entry_id": o.entry_id, "question": o.question, "answer": o.answer,
                       "category": o.category.value} for o in options]
        return [SlotSet("clarify_options", remembered), SlotSet("last_question", message.original),
                SlotSet("last_decision", DecisionKind.CLARIFY.value), _stuck_event(stuck)]


def _top_category(decision: Decision) -> str | None:
    return decision.candidates[0].category.value if decision.candidates else None


class ActionChooseOption(KefuAction):
    """A clarification button (or "第二个"): answer with the chosen entry."""

    def name(self) -> str:
        """See base class."""
        return "action_choose_option"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> Events:
        """Answer from the remembered options, or fetch the entry from the knowledge API."""
        message = read_message(tracker)
        options: list[dict[str, str]] = tracker.get_slot("clarify_options") or []
        entry_id = next(tracker.get_latest_entity_values("entry_id"), None)
        if entry_id is None:
            index = replies.ordinal(message.original)
            entry_id = options[index]["entry_id"] if index is not None and index < len(options) \
                else None
        chosen = next((o for o in options if o["entry_id"] == entry_id), None)
        if chosen is None and entry_id is not None:
            chosen = await self._fetch(str(entry_id))
        if chosen is None:
            utter(dispatcher, replies.option_missing(message.language))
            return []
        await self.services.conversations.record_analysis(message.conversation_id, analysis_of(
            message, DecisionKind.ANSWER.value, entry_id=chosen["entry_id"],
            category=chosen.get("category")))
        utter(dispatcher, replies.answer(chosen["answer"], message.language))
        question = tracker.get_slot("last_question") or chosen["question"]
        return _answer_events(chosen["entry_id"], chosen.get("category"), str(question),
                              after_answer(stuck_of(tracker), chosen["entry_id"]))

    async def _fetch(self, entry_id: str) -> dict[str, str] | None:
        try:
            entry = await self.services.knowledge.entry(entry_id)
        except KnowledgeUnavailableError as exc:
            logger.error("entry %s unavailable: %s", entry_id, exc)
            return None
        if entry is None:
            return None
        return {"entry_id": entry.id, "question": entry.question, "answer": entry.answer,
                "category": entry.category.value}


class ActionNoneOfThese(KefuAction):
    """"都不是 / None of these" under a clarification: rephrase, or a person."""

    def name(self) -> str:
        """See base class."""
        return "action_none_of_these"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> Events:
        """Say the bot got it wrong and offer a person; the topic stays the stuck one."""
        message = read_message(tracker)
        await self.services.conversations.record_analysis(
            message.conversation_id, analysis_of(message, message.intent or "none_of_these"))
        question = tracker.get_slot("last_question")
        if question:
            await _record_escalation(self.services, message, str(question), "none_fit")
        utter(dispatcher, replies.none_fit(message.language))
        return [SlotSet("clarify_options", None)]


class ActionFeedback(KefuAction):
    """The "helpful / not helpful" buttons under an answer."""

    def name(self) -> str:
        """See base class."""
        return "action_feedback"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> Events:
        """Thank, or offer to rephrase or a person; hand off after failing twice on one topic."""
        message = read_message(tracker)
        conversation = message.conversation_id
        entry_id, category = tracker.get_slot("last_entry_id"), tracker.get_slot("last_category")
        await self.services.conversations.record_analysis(conversation, analysis_of(
            message, message.intent or "feedback", entry_id=entry_id, category=category))
        if message.intent == "feedback_helpful":
            utter(dispatcher, replies.thanks_for_feedback(message.language))
            return [SlotSet(STUCK_SLOT, None)]
        question = str(tracker.get_slot("last_question") or "")
        if question:
            await _record_escalation(self.services, message, question, "not_helpful")
        stuck = fail(stuck_of(tracker), Failure.NOT_HELPFUL, [entry_id] if entry_id else [],
                     question)
        if gives_up(stuck):
            return await self.hand_off(dispatcher, tracker, message,
                                       plan_for_failure(category, stuck))
        utter(dispatcher, replies.sorry_not_helpful(message.language))
        return [_stuck_event(stuck)]


class ActionCaptureOrderNumber(KefuAction):
    """An order number: keep it (Rasa slot and conversation record) and acknowledge it."""

    def name(self) -> str:
        """See base class."""
        return "action_capture_order_number"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> Events:
        """Store the order number, or ask for it again when none was recognised."""
        message = read_message(tracker)
        order_number = await self.remember_order_number(tracker, message)
        await self.services.conversations.record_analysis(
            message.conversation_id, analysis_of(message, message.intent or "give_order_number"))
        if order_number is None:
            utter(dispatcher, replies.order_missing(message.language))
            return []
        utter(dispatcher, replies.order_noted(order_number, message.language))
        return [SlotSet("order_number", order_number)]
