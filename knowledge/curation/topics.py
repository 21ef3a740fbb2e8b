"""Learning from escalations: the questions the bot could not handle, grouped into topics.

An *escalation* is a shopper question that ended in a handoff, a low-confidence decision or a
"not helpful" click. They come from two places in Redis:

- the stream ``kb_escalations_key()``, which the actions append to through
  :func:`kefu.escalations.record_escalation`;
- handoff tickets (closed and claimed ones): the questions of their context packet whose knowledge
  decision was not an answer.

Each escalation is completed with what the agents replied to it: the agent turns of the
conversation's transcript that follow the question, up to the next bot turn. Escalations are then
embedded with the knowledge encoder and grouped by average-linkage agglomerative clustering with a
cosine threshold, so "定金能退吗" and "付了定金不想要了能退吗" end up in one topic with a count, the
distinct examples and the agents' replies ranked by how close they are to the topic.

Once a draft made from a topic is published, its escalations are marked resolved and leave the list.
"""

from __future__ import annotations

import hashlib
import json
import logging
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import cast

import numpy as np
import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kefu.conversation import BotAnalysis, ConversationStore, Role, Turn
from kefu.escalations import EscalationReason
from kefu.keys import (
    claimed_key,
    closed_key,
    kb_escalations_key,
    kb_escalations_resolved_key,
    ticket_key,
)
from knowledge.retrieval import Encoder
from knowledge.text import for_matching

logger = logging.getLogger(__name__)

RESOLVED_KEEP_DAYS = 180  # resolved marks older than this are trimmed
DEFAULT_TOPIC_SIMILARITY = 0.9  # average cosine (multilingual-e5-small) within one topic
_NOT_ANSWERED = frozenset({"handoff", "clarify"})  # knowledge decisions that count as escalations
_MAX_REPLIES = 5


class Escalation(BaseModel):
    """One question the bot did not handle, with what agents replied to it."""

    id: str  # stream id, or ``ticket:{ticket id}:{n}``
    text: str
    reason: EscalationReason
    conversation_id: str
    at: datetime
    agent_replies: list[str] = Field(default_factory=list)


class Topic(BaseModel):
    """Escalations that ask the same thing."""

    id: str  # stable while its oldest escalation stays in the topic
    question: str  # the most central example
    count: int  # escalations
    conversations: int  # distinct conversations
    examples: list[str]  # distinct texts, most frequent first
    agent_replies: list[str]  # distinct agent replies, most relevant first
    reasons: dict[str, int]
    first_at: datetime
    last_at: datetime
    escalation_ids: list[str]


class EscalationLog:
    """Reads escalations from the stream and from tickets, and marks them resolved."""

    def __init__(
        self, redis: aioredis.Redis, conversations: ConversationStore | None = None,
    ) -> None:
        self._redis = redis
        self._conversations = conversations or ConversationStore(redis)

    async def recent(
        self, limit: int = 1000, *, include_resolved: bool = False,
    ) -> list[Escalation]:
        """The newest ``limit`` escalations of both sources (oldest first), with agent replies.

        A question escalated both ways in one conversation is listed once.
        """
        found = await self._from_stream(limit) + await self._from_tickets(limit)
        found.sort(key=lambda e: e.at)
        unique: dict[tuple[str, str], Escalation] = {}
        for escalation in found:
            unique.setdefault((escalation.conversation_id, _text_key(escalation.text)), escalation)
        items = list(unique.values())[-limit:]
        if not include_resolved:
            resolved = await self._resolved({e.id for e in items})
            items = [e for e in items if e.id not in resolved]
        return await self._with_replies(items)

    async def resolve(self, escalation_ids: Iterable[str], at: datetime | None = None) -> None:
        """Mark escalations as answered by a published version; they leave the topic list."""
        ids = list(escalation_ids)
        when = (at or datetime.now(UTC)).timestamp()
        async with self._redis.pipeline(transaction=True) as pipe:
            if ids:
                pipe.zadd(kb_escalations_resolved_key(), dict.fromkeys(ids, when))
            keep_after = when - timedelta(days=RESOLVED_KEEP_DAYS).total_seconds()
            pipe.zremrangebyscore(kb_escalations_resolved_key(), "-inf", keep_after)
            await pipe.execute()

    async def _resolved(self, ids: set[str]) -> set[str]:
        if not ids:
            return set()
        ordered = sorted(ids)
        scores = await self._redis.zmscore(kb_escalations_resolved_key(), ordered)
        return {i for i, s in zip(ordered, scores, strict=True) if s is not None}

    async def _from_stream(self, limit: int) -> list[Escalation]:
        rows = cast(list[tuple[str, dict[str, str]]],
                    await self._redis.xrevrange(kb_escalations_key(), count=limit))
        out = []
        for stream_id, fields in rows:
            try:
                out.append(Escalation(id=stream_id, text=fields["text"],
                                      reason=EscalationReason(fields["reason"]),
                                      conversation_id=fields["conversation"],
                                      at=datetime.fromisoformat(fields["at"])))
            except (KeyError, ValueError):
                logger.warning("skipping unreadable escalation %s", stream_id)
        return out

    async def _from_tickets(self, limit: int) -> list[Escalation]:
        closed = cast(list[str], await self._redis.zrevrange(closed_key(), 0, limit - 1))
        claimed = cast(list[str], await self._redis.zrange(claimed_key(), 0, -1))
        ids = list(dict.fromkeys(claimed + closed))
        if not ids:
            return []
        rows = cast(list[str | None], await self._redis.mget([ticket_key(t) for t in ids]))
        out: list[Escalation] = []
        for ticket_id, raw in zip(ids, rows, strict=True):
            if raw is None:
                continue
            try:
                ticket = _TicketView.model_validate_json(raw)
            except ValidationError:
                logger.warning("skipping unreadable ticket %s", ticket_id)
                continue
            out.extend(ticket.escalations())
        return out

    async def _with_replies(self, items: list[Escalation]) -> list[Escalation]:
        transcripts: dict[str, list[Turn]] = {}
        out = []
        for escalation in items:
            conv = escalation.conversation_id
            if conv not in transcripts:
                transcripts[conv] = await self._conversations.transcript(conv)
            replies = agent_replies_after(transcripts[conv], escalation.at)
            merged = list(dict.fromkeys([*escalation.agent_replies, *replies]))
            out.append(escalation.model_copy(update={"agent_replies": merged}))
        return out


def agent_replies_after(transcript: Sequence[Turn], at: datetime) -> list[str]:
    """Agent turns after the shopper's question at ``at`` and before the bot speaks again."""
    replies: list[str] = []
    started = False
    for turn in transcript:
        if turn.at < at:
            continue
        if turn.role is Role.AGENT:
            started = True
            replies.append(turn.text)
        elif turn.role is Role.BOT and started:
            break
    return replies


class _ContextView(BaseModel):
    """The parts of a handoff context packet topics need (the packet is a versioned contract)."""

    model_config = ConfigDict(extra="ignore")

    transcript: list[Turn] = Field(default_factory=list)
    analyses: list[BotAnalysis] = Field(default_factory=list)
    reason: str = ""


class _TicketView(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    conversation_id: str
    created_at: datetime
    context: _ContextView

    def escalations(self) -> list[Escalation]:
        """The questions of the packet the knowledge base did not answer."""
        texts = [(a.text, a.at) for a in self.context.analyses if a.decision in _NOT_ANSWERED]
        if not texts and self.context.reason == "low_confidence":
            shopper = [t for t in self.context.transcript if t.role is Role.SHOPPER]
            texts = [(shopper[-1].text, shopper[-1].at)] if shopper else []
        return [
            Escalation(id=f"ticket:{self.id}:{n}", text=text, reason=EscalationReason.HANDOFF,
                       conversation_id=self.conversation_id, at=at)
            for n, (text, at) in enumerate(texts)
        ]


# --- grouping ---------------------------------------------------------------------------------


def group_topics(
    escalations: Sequence[Escalation],
    encoder: Encoder,
    *,
    similarity: float = DEFAULT_TOPIC_SIMILARITY,
    min_conversations: int = 2,
) -> list[Topic]:
    """Topics of ``escalations`` asked in at least ``min_conversations`` conversations.

    Largest first (by conversations, then escalations, then most recent).
    """
    if not escalations:
        return []
    texts = [for_matching(e.text) or e.text for e in escalations]
    vectors = np.asarray(encoder.encode(texts), dtype=np.float32)
    topics = []
    for members in average_linkage(vectors, similarity):
        chosen = [escalations[i] for i in members]
        if len({e.conversation_id for e in chosen}) >= min_conversations:
            topics.append(_topic(chosen, vectors[members], encoder))
    topics.sort(key=lambda t: (t.conversations, t.count, t.last_at), reverse=True)
    return topics


def average_linkage(vectors: np.ndarray, similarity: float) -> list[list[int]]:
    """Clusters of L2-normalised ``vectors`` whose average pairwise cosine stays ≥ ``similarity``.

    Agglomerative (UPGMA): repeatedly merge the two clusters with the highest average cosine until
    none reaches ``similarity``. Returns lists of row indexes, each sorted.
    """
    n = len(vectors)
    sims = (vectors @ vectors.T).astype(np.float64)
    np.fill_diagonal(sims, -np.inf)
    sizes = np.ones(n)
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    while len(members) > 1:
        flat = int(np.argmax(sims))
        a, b = divmod(flat, n)
        if sims[a, b] < similarity:
            break
        merged = (sizes[a] * sims[a] + sizes[b] * sims[b]) / (sizes[a] + sizes[b])
        sims[a, :], sims[:, a] = merged, merged
        sims[a, a] = -np.inf
        sims[b, :], sims[:, b] = -np.inf, -np.inf
        sizes[a] += sizes[b]
        members[a] += members.pop(b)
    return [sorted(m) for m in members.values()]


def _topic(members: Sequence[Escalation], vectors: np.ndarray, encoder: Encoder) -> Topic:
    oldest = min(members, key=lambda e: (e.at, e.id))
    centre = vectors.mean(axis=0)
    central = members[int(np.argmax(vectors @ centre))]
    counts = Counter(_text_key(e.text) for e in members)
    first_text: dict[str, str] = {}
    for e in members:
        first_text.setdefault(_text_key(e.text), e.text.strip())
    examples = [first_text[key] for key, _ in counts.most_common()]
    return Topic(
        id="t" + hashlib.sha1(oldest.id.encode(), usedforsecurity=False).hexdigest()[:10],
        question=central.text.strip(),
        count=len(members),
        conversations=len({e.conversation_id for e in members}),
        examples=examples,
        agent_replies=_ranked_replies(members, centre, encoder),
        reasons=dict(Counter(e.reason.value for e in members)),
        first_at=min(e.at for e in members),
        last_at=max(e.at for e in members),
        escalation_ids=[e.id for e in members],
    )


def _ranked_replies(
    members: Sequence[Escalation], centre: np.ndarray, encoder: Encoder,
) -> list[str]:
    """Distinct agent replies, the ones closest in meaning to the topic first (greetings last)."""
    replies = list(dict.fromkeys(r.strip() for e in members for r in e.agent_replies if r.strip()))
    if len(replies) <= 1:
        return replies
    vectors = np.asarray(encoder.encode([for_matching(r) or r for r in replies]), dtype=np.float32)
    norm = float(np.linalg.norm(centre)) or 1.0
    order = np.argsort(-(vectors @ (centre / norm)), kind="stable")
    return [replies[i] for i in order[:_MAX_REPLIES]]


def _text_key(text: str) -> str:
    """Wordings that differ only in script, width, case, spaces or punctuation are one example."""
    return "".join(ch for ch in for_matching(text)
                   if not unicodedata.category(ch).startswith(("P", "Z")))


def topic_json(topics: Sequence[Topic]) -> str:
    """Topics as a JSON array (CLI ``--json``)."""
    return json.dumps([t.model_dump(mode="json") for t in topics], ensure_ascii=False, indent=2)
