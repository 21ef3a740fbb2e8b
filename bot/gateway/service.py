"""The gateway service: the one place that decides, for every channel, whether bot or human answers.

Channels (HTTP API, web widget, Telegram) translate their input into :meth:`Gateway.handle` and
deliver the :class:`Reply`. While a handoff ticket is open the message goes into the ticket and
Rasa never sees it; otherwise it goes through Rasa and the bot's replies come back.
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
from bot.gateway.errors import InvalidMessage
from bot.gateway.rasa_client import RasaClient, RasaMessage
from kefu.conversation import Button, ConversationStore, Role, Turn, conversation_id

logger = logging.getLogger(__name__)

_RATE_PAYLOAD = re.compile(r"^/rate\s*(\{.*\})\s*$")


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
                 prefetch: Callable[[str], None] | None = None) -> None:
        self._rasa = rasa
        self._prefetch = prefetch
        self._backpressure = backpressure
        self._conversations = conversations
        self._handoff = handoff
        self._normalize = normalize
        self._max_chars = max_chars

    async def handle(self, channel: str, chat: str, text: str, *,
                     display_name: str | None = None) -> Reply:
        """Process one shopper message and return what to send back."""
        text = self._validate(text)
        conv = conversation_id(channel, chat)
        if display_name:
            await self._conversations.set_profile(conv, channel=channel, display_name=display_name)
        ticket = await self._handoff.open_ticket(conv)
        if ticket is not None:
            await self._handoff.add_shopper_message(conv, text, ticket=ticket)
            return Reply(messages=[], mode=Mode.HANDOFF)
        rating = _rating(text)
        if rating is not None:
            return await self._rate(conv, rating)
        said = await self._conversations.append(conv, Role.SHOPPER, text)
        metadata = {"channel": channel, "original_text": text, "display_name": display_name or ""}
        for_rasa = self._for_rasa(text)
        self._start_prefetch(for_rasa)
        bot_messages = await self._send_to_rasa(conv, for_rasa, metadata)
        for m in bot_messages:
            if m.text or m.buttons:
                await self._conversations.append(conv, Role.BOT, m.text, buttons=m.buttons)
        # Everything sent since the shopper's turn, not only Rasa's replies: a handoff during the
        # turn queues a system message (position, back-to-bot button) before the bot's reply, and
        # a client reading on with ``messages_after(last id)`` would never see it. Both reads at
        # once: two Redis round trips, one wait.
        ticket, sent = await asyncio.gather(
            self._handoff.open_ticket(conv),
            self._conversations.sent_to_shopper(conv, after=said.id))
        mode = Mode.HANDOFF if ticket is not None else Mode.BOT
        return Reply(messages=[_out(t) for t in sent], mode=mode)

    async def messages_after(self, channel: str, chat: str, after: str | None) -> list[OutMessage]:
        """Bot, agent and system messages sent to the shopper after the message id ``after``."""
        turns = await self._conversations.sent_to_shopper(conversation_id(channel, chat), after)
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
