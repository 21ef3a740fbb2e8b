"""The gateway service: the one place that decides, for every channel, whether bot or human answers.

Channels (HTTP API, web widget, Telegram) translate their input into :meth:`Gateway.handle` and
deliver the :class:`Reply`. While a handoff ticket is open the message goes into the ticket and
Rasa never sees it; otherwise it goes through Rasa and the bot's replies come back.

Never silent: when Rasa cannot be reached, or answers nothing, the gateway answers by itself
(:mod:`bot.gateway.fallback`: the knowledge answer, or a ticket for "转人工" and complaints).
Through a Redis restart it waits (:func:`kefu.redis.patiently`, a few seconds) instead of
failing; if Redis stays away before the shopper's message could be kept, the reply is
:data:`RETRYING_TEXT` with ``retry_after``: the message was not kept and should be sent again
(the widget does so by itself).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, Field

from bot.gateway.backpressure import Backpressure
from bot.gateway.errors import InvalidMessage, UpstreamUnavailable
from bot.gateway.fallback import Fallback, Why
from bot.gateway.rasa_client import RasaClient, RasaMessage
from kefu.conversation import Button, ConversationStore, Role, Turn, conversation_id
from kefu.redis import RedisUnavailable, patiently

logger = logging.getLogger(__name__)

_RATE_PAYLOAD = re.compile(r"^/rate\s*(\{.*\})\s*$")

RETRYING_TEXT = "稍等，正在重试…\nOne moment, retrying…"
"""The reply when the shopper's message could not be kept (Redis away): send it again."""
RETRY_AFTER_SECONDS = 3.0
SILENT_TEXT = ("抱歉，我暂时无法回答，请稍后再试，或转人工客服。\n"
               "Sorry, I can't answer right now. Please try again, or talk to a person.")
"""Said when Rasa said nothing and no fallback is wired (tests of the HTTP edge alone)."""


class Mode(StrEnum):
    """Who answers the conversation now."""

    BOT = "bot"  # Rasa answers
    HANDOFF = "handoff"  # a ticket is open: a human owns the chat, the bot is silent


class OutMessage(BaseModel):
    """A message to the shopper."""

    id: str = ""
    text: str
    buttons: list[Button] = Field(default_factory=list)


class Reply(BaseModel):
    """What the gateway answers to one shopper message."""

    messages: list[OutMessage]
    mode: Mode
    conversation_token: str | None = Field(
        default=None, description="on the first reply of a new conversation only: send it as "
        "'Authorization: Bearer <token>' with every later call for this conversation")
    retry_after: float | None = Field(
        default=None, description="set when the message could not be kept: send it again "
        "after this many seconds")


class HandoffPort(Protocol):
    """What the gateway needs from the handoff service."""

    async def open_ticket(self, conversation_id: str) -> Any | None:
        """The open ticket of the conversation, if a human owns it."""

    async def add_shopper_message(self, conversation_id: str, text: str, *,
                                  meta: dict[str, Any] | None = None,
                                  ticket: Any | None = None) -> Turn:
        """Put a shopper message into the open ticket (``ticket``, when just read)."""

    async def rate(self, conversation_id: str, score: int) -> Any:
        """Store the shopper's satisfaction rating on the last resolved ticket."""


class Gateway:
    """Routes shopper messages to the bot or to the human who owns the conversation."""

    def __init__(self, rasa: RasaClient, conversations: ConversationStore, handoff: HandoffPort,
                 *, normalize: Callable[[str], str] = str.strip, max_chars: int = 2000,
                 backpressure: Backpressure | None = None,
                 prefetch: Callable[[str], None] | None = None,
                 fallback: Fallback | None = None, redis_wait_seconds: float = 8.0) -> None:
        self._rasa = rasa
        self._fallback = fallback
        self._redis_wait = redis_wait_seconds
        self._prefetch = prefetch
        self._backpressure = backpressure
        self._conversations = conversations
        self._handoff = handoff
        self._normalize = normalize
        self._max_chars = max_chars

    async def handle(self, channel: str, chat: str, text: str, *,
                     display_name: str | None = None, store_account: str | None = None) -> Reply:
        """Process one shopper message and return what to send back.

        ``store_account``: the shopper's account as the channel vouches for it (Rasa metadata;
        the order actions tell that account's orders without asking for the phone).
        """
        text = self._validate(text)
        conv = conversation_id(channel, chat)
        try:
            said, early = await patiently(
                lambda: self._receive(conv, channel, text, display_name),
                seconds=self._redis_wait, what=f"keeping a message of {conv}")
        except RedisUnavailable as exc:
            logger.error("message of %s not kept, the shopper is asked to resend: %s", conv, exc)
            return Reply(messages=[OutMessage(text=RETRYING_TEXT)], mode=Mode.BOT,
                         retry_after=RETRY_AFTER_SECONDS)
        if early is not None:
            return early
        assert said is not None
        metadata = {"channel": channel, "original_text": text, "display_name": display_name or ""}
        if store_account:
            metadata["store_account"] = store_account
        for_rasa = self._for_rasa(text)
        self._start_prefetch(for_rasa)
        try:
            bot_messages: list[RasaMessage] | None = await self._send_to_rasa(
                conv, for_rasa, metadata)
        except UpstreamUnavailable as exc:
            logger.warning("Rasa unavailable for %s (%s): the gateway answers", conv, exc.message)
            bot_messages = None
        tries = 0

        async def answer() -> Reply:
            nonlocal tries
            tries += 1
            return await self._answer(conv, channel, text, for_rasa, said, bot_messages,
                                      display_name, retrying=tries > 1)

        try:
            return await patiently(answer, seconds=self._redis_wait, what=f"answering {conv}")
        except RedisUnavailable as exc:  # the message is kept; say what we have, unrecorded
            logger.error("answer to %s not recorded: %s", conv, exc)
            out = [OutMessage(text=m.text, buttons=m.buttons) for m in bot_messages or []
                   if m.text or m.buttons]
            return Reply(messages=out or [OutMessage(text=RETRYING_TEXT)], mode=Mode.BOT)

    async def _receive(self, conv: str, channel: str, text: str,
                       display_name: str | None) -> tuple[Turn | None, Reply | None]:
        """Keep the shopper's message: its turn, or the whole reply when no bot turn follows.

        Safe to repeat while Redis is away: nothing is written before the last step fails.
        """
        if display_name:
            await self._conversations.set_profile(conv, channel=channel, display_name=display_name)
        ticket = await self._handoff.open_ticket(conv)
        if ticket is not None:
            await self._handoff.add_shopper_message(conv, text, ticket=ticket)
            return None, Reply(messages=[], mode=Mode.HANDOFF)
        rating = _rating(text)
        if rating is not None:
            return None, await self._rate(conv, rating)
        return await self._conversations.append(conv, Role.SHOPPER, text), None

    async def _answer(self, conv: str, channel: str, text: str, for_rasa: str, said: Turn,
                      bot_messages: list[RasaMessage] | None, display_name: str | None, *,
                      retrying: bool = False) -> Reply:
        """Record Rasa's replies (or the gateway's own) and return what the shopper gets."""
        recorded = {t.text for t in await self._conversations.sent_to_shopper(conv, said.id)} \
            if retrying else set()
        for m in bot_messages or []:  # on a retry, what was recorded before is not repeated
            if (m.text or m.buttons) and m.text not in recorded:
                await self._conversations.append(conv, Role.BOT, m.text, buttons=m.buttons)
        # Everything sent since the shopper's turn, not only Rasa's replies: a handoff during the
        # turn queues a system message (position, back-to-bot button) before the bot's reply, and
        # a client reading on with ``messages_after(last id)`` would never see it. Both reads at
        # once: two Redis round trips, one wait.
        ticket, sent = await asyncio.gather(
            self._handoff.open_ticket(conv),
            self._conversations.sent_to_shopper(conv, after=said.id))
        if not sent and ticket is None:  # never an empty reply
            why = Why.RASA_DOWN if bot_messages is None else Why.SILENT
            await self._answer_without_rasa(conv, channel, text, for_rasa, why, display_name)
            ticket, sent = await asyncio.gather(
                self._handoff.open_ticket(conv),
                self._conversations.sent_to_shopper(conv, after=said.id))
        mode = Mode.HANDOFF if ticket is not None else Mode.BOT
        return Reply(messages=[_out(t) for t in sent], mode=mode)

    async def _answer_without_rasa(self, conv: str, channel: str, text: str, for_rasa: str,
                                   why: Why, display_name: str | None) -> None:
        if self._fallback is None:
            await self._conversations.append(conv, Role.BOT, SILENT_TEXT,
                                             meta={"degraded": why.value})
            return
        await self._fallback.answer(conv, channel, text, for_rasa, why,
                                    display_name=display_name)

    async def messages_after(self, channel: str, chat: str, after: str | None) -> list[OutMessage]:
        """Bot, agent and system messages sent to the shopper after the message id ``after``."""
        conv = conversation_id(channel, chat)
        turns = await patiently(lambda: self._conversations.sent_to_shopper(conv, after),
                                seconds=self._redis_wait, what=f"reading {conv}")
        return [_out(t) for t in turns]

    async def _send_to_rasa(self, conv: str, text: str,
                            metadata: dict[str, str]) -> list[RasaMessage]:
        if self._backpressure is None:
            return await self._rasa.send(conv, text, metadata)
        return await self._backpressure.send(self._rasa, conv, text, metadata)

    def _start_prefetch(self, text: str) -> None:
        """Let the knowledge side start embedding a typed message while Rasa classifies it."""
        if self._prefetch is None or text.startswith("/"):  # button payloads are not questions
            return
        try:
            self._prefetch(text)
        except Exception:  # an optimisation only: the decision embeds the text itself
            logger.exception("prefetching the question's vectors failed")

    def _validate(self, text: str) -> str:
        stripped = text.strip()
        if not stripped:
            raise InvalidMessage("text must not be empty", field="text")
        if not stripped.isprintable() and any(0xD800 <= ord(c) <= 0xDFFF for c in stripped):
            raise InvalidMessage("text holds a lone UTF-16 surrogate", field="text")
        if len(stripped) > self._max_chars:
            raise InvalidMessage(f"text is longer than {self._max_chars} characters", field="text")
        return stripped

    def _for_rasa(self, text: str) -> str:
        return text if text.startswith("/") else self._normalize(text)

    async def _rate(self, conv: str, score: int) -> Reply:
        await self._conversations.append(conv, Role.SHOPPER, f"/rate {score}")
        await self._handoff.rate(conv, score)
        thanks = await self._conversations.append(
            conv, Role.SYSTEM, "感谢您的评价！Thanks for your rating!")
        return Reply(messages=[_out(thanks)], mode=Mode.BOT)


def _rating(text: str) -> int | None:
    match = _RATE_PAYLOAD.match(text)
    if match is None:
        return None
    try:
        score = int(json.loads(match.group(1))["score"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidMessage("rating payload must be /rate{\"score\": 1..5}", field="text") from exc
    if not 1 <= score <= 5:
        raise InvalidMessage("rating score must be between 1 and 5", field="text")
    return score


def _out(turn: Turn) -> OutMessage:
    return OutMessage(id=turn.id, text=turn.text, buttons=turn.buttons)
