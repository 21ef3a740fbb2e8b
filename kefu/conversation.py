"""The conversation record every part of kefu shares.

Transcript, bot-turn analyses, profile, counters and captured slots.

A conversation is identified by ``"{channel}:{chat}"`` (e.g. ``web:alice``, ``telegram:12345``).
The gateway appends shopper and bot turns, actions record what the bot understood for each turn,
handoff appends agent turns and reads it all back for the agent's context packet. Turns live in
one Redis stream per conversation, so stream ids double as message ids and ``after`` cursors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, cast

import redis.asyncio as aioredis
from pydantic import BaseModel, Field

from kefu import metrics
from kefu.errors import InvalidCursor
from kefu.keys import (
    conv_outbound_key,
    conv_profile_key,
    conv_questions_key,
    conv_state_key,
    conv_transcript_key,
    conv_turns_key,
)
from kefu.privacy import mask

TRANSCRIPT_TTL_SECONDS = 7 * 24 * 3600
TRANSCRIPT_MAX_TURNS = 2000
OUTBOUND_MAX_LEN = 100_000
QUESTIONS_KEEP = timedelta(days=7)
QUESTIONS_MAX_LEN = 50_000
_PUSHED_ROLES = frozenset({"agent", "system"})
_TURN_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")
_MAX_ID_PART = 2**64 - 1

# Append a turn to the transcript and, for pushed roles, announce it on the outbound stream,
# atomically (the outbound entry needs the transcript's stream id).
_APPEND_LUA = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'turn', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
if ARGV[6] == '1' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'conversation', ARGV[5], 'turn', id)
end
return id
"""


class Role(StrEnum):
    """Who spoke a turn."""

    SHOPPER = "shopper"  # the customer
    BOT = "bot"  # the assistant (Rasa + actions)
    AGENT = "agent"  # a human agent from the console
    SYSTEM = "system"  # kefu itself (queue position, "an agent joined"…)


class Button(BaseModel):
    """A quick reply offered with a message."""

    title: str
    payload: str


class Turn(BaseModel):
    """One message in a conversation."""

    id: str = ""  # Redis stream id, assigned on append
    role: Role
    text: str
    at: datetime
    buttons: list[Button] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)


class CandidateScore(BaseModel):
    """A knowledge entry the bot considered, with its score."""

    entry_id: str
    question: str
    score: float


class BotAnalysis(BaseModel):
    """What the bot understood of one shopper message and what it decided."""

    at: datetime
    text: str
    intent: str | None = None
    intent_confidence: float | None = None
    decision: str | None = None  # answer | clarify | handoff | (an intent handled by a rule)
    entry_id: str | None = None
    category: str | None = None
    candidates: list[CandidateScore] = Field(default_factory=list)


class AskedQuestion(BaseModel):
    """A question a shopper asked the bot (from the recent-questions stream)."""

    text: str
    conversation_id: str
    at: datetime


def conversation_id(channel: str, chat: str) -> str:
    """The id of the conversation a channel's chat belongs to."""
    return f"{channel}:{chat}"


def check_cursor(after: str) -> str:
    """``after`` when it is a message id a transcript can be read after; else InvalidCursor."""
    match = _TURN_ID.match(after)
    parts = [int(p) for p in match.groups()] if match else []
    if not parts or max(parts) > _MAX_ID_PART or parts == [_MAX_ID_PART, _MAX_ID_PART]:
        raise InvalidCursor("after must be a message id like 1700000000000-0", after=after)
    return after


def utcnow() -> datetime:
    """Timezone-aware now; the one clock of this module (tests pass explicit times instead)."""
    return datetime.now(UTC)


class ConversationStore:
    """Reads and writes the conversation record in Redis."""

    def __init__(self, redis: aioredis.Redis, ttl_seconds: int = TRANSCRIPT_TTL_SECONDS) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self.observers: list[Callable[[str, Turn], None]] = []
        """Called with (conversation, turn) after every append, in the appending process: quick,
        synchronous, never raising (the quality monitor checks every message this way)."""
        self.analysis_observers: list[Callable[[str, BotAnalysis], None]] = []
        """Called with (conversation, analysis) after every :meth:`record_analysis`, likewise."""

    async def append(
        self,
        conversation: str,
        role: Role,
        text: str,
        *,
        buttons: list[Button] | None = None,
        meta: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> Turn:
        """Add a turn and return it with its id.

        Agent and system turns happen outside a shopper's request, so they are also announced on
        the outbound stream for channels that push (Telegram). Bot replies travel back in the
        response of the request that caused them.
        """
        turn = Turn(role=role, text=text, at=at or utcnow(), buttons=buttons or [], meta=meta or {})
        stream_id = await self._redis.eval(
            _APPEND_LUA, 2, conv_transcript_key(conversation), conv_outbound_key(),
            turn.model_dump_json(exclude={"id"}), self._ttl, TRANSCRIPT_MAX_TURNS,
            OUTBOUND_MAX_LEN, conversation, "1" if role.value in _PUSHED_ROLES else "0",
        )
        turn.id = str(stream_id)
        metrics.MESSAGES.labels(metrics.channel_of(conversation), role.value).inc()
        for observe in self.observers:
            observe(conversation, turn)
        return turn

    async def transcript(self, conversation: str, after: str | None = None,
                         limit: int = TRANSCRIPT_MAX_TURNS) -> list[Turn]:
        """Turns in order; only those after the stream id ``after`` when given."""
        start = f"({check_cursor(after)}" if after else "-"
        rows = cast(list[tuple[str, dict[str, str]]], await self._redis.xrange(
            conv_transcript_key(conversation), min=start, count=limit))
        return [_turn_from_row(stream_id, fields) for stream_id, fields in rows]

    async def tail(self, conversation: str, count: int) -> list[Turn]:
        """The last ``count`` turns, in order."""
        rows = cast(list[tuple[str, dict[str, str]]], await self._redis.xrevrange(
            conv_transcript_key(conversation), count=count))
        return [_turn_from_row(stream_id, fields) for stream_id, fields in reversed(rows)]

    async def turn(self, conversation: str, turn_id: str) -> Turn | None:
        """One turn by its id; None when it expired or was trimmed away."""
        rows = cast(list[tuple[str, dict[str, str]]], await self._redis.xrange(
            conv_transcript_key(conversation), min=turn_id, max=turn_id, count=1))
        return _turn_from_row(*rows[0]) if rows else None

    async def wait_for_turns(self, conversation: str, after: str | None,
                             timeout_ms: int) -> list[Turn]:
        """Turns after ``after``, blocking up to ``timeout_ms`` for the first (live channels)."""
        key = conv_transcript_key(conversation)
        result: Any = await self._redis.xread({key: after or "0-0"}, count=TRANSCRIPT_MAX_TURNS,
                                              block=timeout_ms)
        streams = result.items() if isinstance(result, dict) else (result or [])
        return [_turn_from_row(str(stream_id), fields)
                for _key, rows in streams for stream_id, fields in rows]

    async def sent_to_shopper(self, conversation: str, after: str | None = None) -> list[Turn]:
        """Bot, agent and system turns after ``after``: what the shopper should have received."""
        turns = await self.transcript(conversation, after=after)
        return [t for t in turns if t.role is not Role.SHOPPER]

    async def record_analysis(self, conversation: str, analysis: BotAnalysis, *,
                              asked: bool = False) -> None:
        """Keep what the bot understood of a turn (for the agent's context panel).

        ``asked``: the turn was a question the knowledge base was asked; it also goes to the
        stream of recent questions (`recent_questions`), in the same round trip, with phone and
        ID numbers masked (:func:`kefu.privacy.mask`): the stream outlives the chat.
        """
        key = conv_turns_key(conversation)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, analysis.model_dump_json())
            pipe.ltrim(key, -TRANSCRIPT_MAX_TURNS, -1)
            pipe.expire(key, self._ttl)
            if asked:
                oldest = int((analysis.at - QUESTIONS_KEEP).timestamp() * 1000)
                pipe.xadd(conv_questions_key(), cast(Any, {  # kept for days: numbers masked
                    "text": mask(analysis.text), "conversation": conversation,
                    "at": analysis.at.isoformat()}), minid=oldest, approximate=True)
                pipe.xtrim(conv_questions_key(), maxlen=QUESTIONS_MAX_LEN, approximate=True)
            await pipe.execute()
        for observe in self.analysis_observers:
            observe(conversation, analysis)

    async def recent_questions(self, since: datetime, limit: int) -> list[AskedQuestion]:
        """Distinct questions shoppers asked the bot since ``since``, newest first."""
        seen: set[str] = set()
        found: list[AskedQuestion] = []
        start = f"{int(since.timestamp() * 1000)}-0"
        cursor = "+"
        while len(found) < limit:
            rows = cast(list[tuple[str, dict[str, str]]], await self._redis.xrevrange(
                conv_questions_key(), max=cursor, min=start, count=500))
            for _id, fields in rows:
                key = "".join(fields["text"].casefold().split())
                if key and key not in seen:
                    seen.add(key)
                    found.append(AskedQuestion(
                        text=fields["text"], conversation_id=fields["conversation"],
                        at=datetime.fromisoformat(fields["at"])))
            if len(rows) < 500:
                break
            cursor = f"({rows[-1][0]}"
        return found[:limit]

    async def analyses(self, conversation: str) -> list[BotAnalysis]:
        """Every recorded bot-turn analysis, oldest first."""
        rows = await self._redis.lrange(conv_turns_key(conversation), 0, -1)
        return [BotAnalysis.model_validate_json(row) for row in rows]

    async def set_profile(self, conversation: str, **fields: str) -> None:
        """Remember channel facts about the shopper (display name, language, chat id)."""
        key = conv_profile_key(conversation)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=cast(dict[Any, Any], fields))
            pipe.expire(key, 30 * 24 * 3600)
            await pipe.execute()

    async def profile(self, conversation: str) -> dict[str, str]:
        """What :meth:`set_profile` stored."""
        return cast(dict[str, str], await self._redis.hgetall(conv_profile_key(conversation)))

    async def incr_counter(self, conversation: str, name: str) -> int:
        """Increase a per-conversation counter (e.g. failed turns in a row) and return it."""
        key = conv_state_key(conversation)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(key, name, 1)
            pipe.expire(key, self._ttl)
            value, _ = await pipe.execute()
        return int(value)

    async def reset_counter(self, conversation: str, name: str) -> None:
        """Set a counter back to zero."""
        await self._redis.hdel(conv_state_key(conversation), name)

    async def set_slot(self, conversation: str, name: str, value: str) -> None:
        """Store a captured slot (order number…) outside Rasa so agents see it."""
        key = conv_state_key(conversation)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, f"slot:{name}", value)
            pipe.expire(key, self._ttl)
            await pipe.execute()

    async def slots(self, conversation: str) -> dict[str, str]:
        """Captured slots by name."""
        state = cast(dict[str, str], await self._redis.hgetall(conv_state_key(conversation)))
        return {k.removeprefix("slot:"): v for k, v in state.items() if k.startswith("slot:")}


def _turn_from_row(stream_id: str, fields: dict[str, str]) -> Turn:
    turn = Turn.model_validate(json.loads(fields["turn"]))
    turn.id = stream_id
    return turn
