"""Answering without Rasa: what the gateway says when Rasa is down or says nothing.

A shopper must never get silence. When Rasa cannot be reached, or answers a message with no
reply (its custom action failed, a rule predicted nothing), the gateway answers by itself with
what it holds in process:

- "转人工", "我要投诉" and the other examples of Rasa's ``request_human`` and ``complain``
  intents (read from Rasa's own training data, ``bot/rasa/data/nlu.yml``, so the two never
  disagree on the words), and their button payloads, open a ticket as ``action_handoff`` would,
  a complaint with high priority;
- a clarification button (``/choose_option{...}``) answers that entry if it is live now;
- anything else typed is a question for the knowledge decision, the same one the Rasa action
  asks (answer, clarify, or hand off when the bot cannot answer);
- any other payload gets a short "please type your question, or talk to a person".

The replies are Rasa's own wording (``actions.replies``) and go into the transcript like the
bot's, marked ``meta.degraded`` with why.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import yaml
from redis.exceptions import RedisError

from actions import replies
from actions.errors import KnowledgeUnavailableError
from actions.policy import HandoffPlan, group_for, plan_for_intent
from handoff.errors import HandoffError
from handoff.models import Availability, HandoffReason, Ticket
from kefu.conversation import Button, ConversationStore, Role
from kefu.language import Language, detect_language
from knowledge.models import Decision, DecisionKind, Entry

logger = logging.getLogger(__name__)

NLU_FILE = Path(__file__).resolve().parents[1] / "rasa" / "data" / "nlu.yml"
HANDOFF_INTENTS = ("complain", "request_human")  # checked in this order: a complaint wins
INTENT_PAYLOADS = {"/request_human": "request_human", "/human": "request_human",
                   "/complain": "complain", replies.LEAVE_MESSAGE_PAYLOAD: "leave_message"}
_CHOOSE = re.compile(r"^/choose_option\s*(\{.*\})\s*$")


class Why(StrEnum):
    """Why the gateway answered without Rasa."""

    RASA_DOWN = "rasa_down"  # Rasa could not be reached or failed
    SILENT = "silent"  # Rasa answered nothing (an action failed, no rule applied)


class Decider(Protocol):
    """The knowledge side the fallback asks (``actions.KnowledgeClient``)."""

    async def decide(self, text: str) -> Decision:
        """Answer, clarify or hand off ``text``."""

    async def entry(self, entry_id: str) -> Entry | None:
        """The entry with that id if it is live now."""


class HandoffOpener(Protocol):
    """What the fallback needs of :class:`handoff.service.HandoffService`."""

    async def request_handoff(self, conversation_id: str, *, reason: HandoffReason,
                              channel: str, group: str | None = None, priority: Any = None,
                              display_name: str | None = None) -> Ticket:
        """Open (or join) the conversation's ticket."""

    async def availability(self, conversation_id: str, group: str | None = None) -> Availability:
        """Whether a person of the group can take the chat now."""


@dataclass(frozen=True)
class IntentExamples:
    """Rasa's examples of the intents that hand off, normalised like a message."""

    examples: Mapping[str, Sequence[str]]

    @classmethod
    def load(cls, normalize: Callable[[str], str], path: Path = NLU_FILE) -> IntentExamples:
        """The ``request_human`` and ``complain`` examples of Rasa's training data."""
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        found: dict[str, list[str]] = {}
        for block in data.get("nlu") or []:
            intent = block.get("intent")
            if intent in HANDOFF_INTENTS:
                lines = str(block.get("examples") or "").splitlines()
                texts = [normalize(line.strip().removeprefix("- ").strip()) for line in lines]
                found.setdefault(intent, []).extend(t for t in texts if t)
        return cls(found)

    def intent_of(self, text: str) -> str | None:
        """``complain`` or ``request_human`` when ``text`` holds one of their examples."""
        for intent in HANDOFF_INTENTS:
            for example in self.examples.get(intent, ()):
                if _contains(text, example):
                    return intent
        return None


def _contains(text: str, example: str) -> bool:
    if example.isascii():  # whole words: "complaint" must not fire inside "complaints page"
        return re.search(rf"(?<![a-z0-9]){re.escape(example)}(?![a-z0-9])", text) is not None
    return example in text


class Fallback:
    """Answers a message in the gateway itself, from the knowledge base, or hands it off."""

    def __init__(self, knowledge: Decider, handoff: HandoffOpener,
                 conversations: ConversationStore, intents: IntentExamples) -> None:
        self._knowledge = knowledge
        self._handoff = handoff
        self._conversations = conversations
        self._intents = intents

    async def answer(self, conversation_id: str, channel: str, typed: str, normalized: str,
                     why: Why, *, display_name: str | None = None) -> None:
        """Answer ``typed`` (``normalized`` as Rasa would have seen it) into the transcript."""
        language = detect_language(typed) or _language(
            (await self._conversations.profile(conversation_id)).get("language"))
        said = _Said(self._conversations, conversation_id, why)
        intent = INTENT_PAYLOADS.get(typed.strip()) or (
            None if typed.startswith("/") else self._intents.intent_of(normalized))
        logger.warning("answering %s without Rasa (%s): %s", conversation_id, why.value,
                       intent or ("payload" if typed.startswith("/") else "question"))
        if intent == "leave_message":  # chosen after "nobody is online": open it now
            await self._hand_off(said, channel, plan_for_intent("request_human", None), language,
                                 display_name, ask_first=False)
        elif intent is not None:
            await self._hand_off(said, channel, plan_for_intent(intent, None), language,
                                 display_name)
        elif typed.startswith("/"):
            await self._payload(said, typed, language)
        else:
            await self._question(said, channel, normalized or typed, language, display_name)

    async def _question(self, said: _Said, channel: str, text: str, language: Language,
                        display_name: str | None) -> None:
        try:
            decision = await self._knowledge.decide(text)
        except KnowledgeUnavailableError as exc:
            logger.error("knowledge decision failed without Rasa too: %s", exc)
            decision = None
        if decision is not None and decision.kind is DecisionKind.ANSWER and decision.entry:
            await said.bot(replies.answer(decision.entry.answer, language).text)
        elif decision is not None and decision.kind is DecisionKind.CLARIFY and decision.options:
            reply = replies.clarify(decision.options, language)  # its way out: 都不是, 转人工
            await said.bot(reply.text, reply.buttons)
        else:
            category = decision.candidates[0].category.value \
                if decision is not None and decision.candidates else None
            plan = HandoffPlan(HandoffReason.LOW_CONFIDENCE, group_for(category), None)
            await self._hand_off(said, channel, plan, language, display_name)

    async def _payload(self, said: _Said, payload: str, language: Language) -> None:
        chosen = _CHOOSE.match(payload)
        entry_id = _entry_id(chosen.group(1)) if chosen else None
        entry = await self._entry(entry_id) if entry_id else None
        if entry is not None:
            await said.bot(replies.answer(entry.answer, language).text)
        elif payload.startswith(replies.NONE_FIT_PAYLOAD):  # "都不是" under a clarification
            reply = replies.none_fit(language)
            await said.bot(reply.text, reply.buttons)
        elif payload.startswith(replies.KEEP_WITH_BOT_PAYLOAD):
            await said.bot(replies.keep_with_bot(language).text)
        elif payload.startswith(replies.HELPFUL_PAYLOAD):
            await said.bot(replies.thanks_for_feedback(language).text)
        elif payload.startswith(replies.NOT_HELPFUL_PAYLOAD):
            reply = replies.sorry_not_helpful(language)
            await said.bot(reply.text, reply.buttons)
        else:
            text = ("请直接输入您的问题，或转人工客服。" if language is Language.ZH
                    else "Please type your question, or talk to a person.")
            await said.bot(text, [replies.human_button(language)])

    async def _entry(self, entry_id: str) -> Entry | None:
        try:
            return await self._knowledge.entry(entry_id)
        except KnowledgeUnavailableError:
            return None

    async def _hand_off(self, said: _Said, channel: str, plan: HandoffPlan, language: Language,
                        display_name: str | None, *, ask_first: bool = True) -> None:
        if ask_first:
            try:
                available = await self._handoff.availability(said.conversation_id, plan.group)
            except (HandoffError, RedisError) as exc:
                logger.error("availability unknown for %s: %r", said.conversation_id, exc)
            else:
                if not available.open:
                    reply = replies.nobody_online(available.group, available.in_hours, language)
                    await said.bot(reply.text, reply.buttons)
                    return
            await said.bot(replies.handing_off(plan.reason, language).text)
        ticket = await self._handoff.request_handoff(
            said.conversation_id, reason=plan.reason, channel=channel, group=plan.group,
            priority=plan.priority, display_name=display_name)
        logger.info("%s handed off without Rasa: ticket %s (%s)", said.conversation_id,
                    ticket.id, plan.reason)


@dataclass(frozen=True)
class _Said:
    conversations: ConversationStore
    conversation_id: str
    why: Why

    async def bot(self, text: str, buttons: Sequence[Mapping[str, str]] = ()) -> None:
        await self.conversations.append(
            self.conversation_id, Role.BOT, text,
            buttons=[Button(title=b["title"], payload=b["payload"]) for b in buttons],
            meta={"degraded": self.why.value})


def _language(value: str | None) -> Language:
    return Language.EN if value == Language.EN.value else Language.ZH


def _entry_id(raw: str) -> str | None:
    try:
        value = json.loads(raw).get("entry_id")
    except (ValueError, AttributeError):
        return None
    return str(value) if value else None
