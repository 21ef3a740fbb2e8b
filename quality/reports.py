"""Supervisor reports from incremental Redis counters, and the QA record of each closed ticket.

Nothing here scans conversations when a report is read. Each event updates a few per-day keys as
it happens (``kefu.keys.qa_report_key(day, name)``, the shop's local day, TTL 90 days):

- a shopper message: ``convs`` (sorted set conversation → first message time; ``h{HH}:convs``
  counts the new ones per hour); ``/feedback_not_helpful`` adds the chat to ``wrong``;
- a bot answer (a message offering 有帮助/没帮助): the chat goes into ``answered``;
- a new ticket (``ticket.waiting`` the first time): ``tickets``; ``handed`` (the conversation);
  ``handoff:{reason}`` (drill-down), and in the ``counts`` hash ``handoff:{reason}`` and
  ``h{HH}:handoffs``;
  a chat already in ``answered`` goes into ``wrong`` (a handoff after an answer);
- a closed ticket (``ended``, once): its :class:`QaRecord` (``qa_record_key``); for its group
  (``g:{group}``) and agent (``a:{agent}``), each a *scope*: ``handed:{scope}`` (conversation),
  ``handoff:{reason}:{scope}``, ``answered:{scope}`` / ``wrong:{scope}`` (the bot had answered /
  answered wrongly before the handoff), ``alerts:{rule}:{scope}`` sorted sets and counts, and
  ``h{HH}:handoffs:{scope}`` (the hour it was opened); unless the shopper cancelled it,
  ``closed`` / ``closed:{scope}`` (tickets) and, for the store and each scope,
  ``wait:``, ``frt:``, ``resolution:``, ``length:`` sorted sets (ticket → seconds or messages)
  and ``closed:`` counts;
- a rating: ``csat:{score}:{dim}`` counts and ``csat:{score}`` / ``csat:{score}:{scope}``
  (drill-down), on the closing day;
- a knowledge decision (the actions' analysis): ``top-answered`` (entry → answers) or, handed off,
  ``top-unanswered`` (its nearest entry → count), with ``entry-questions`` for their labels;
- an alert: ``alerts:{rule}`` counts and drill-down; the rule is kept with the conversation and
  the ticket (two days) for the QA record's "rules hit" (also those before the handoff).

A report is then ``HGETALL counts`` plus, per percentile, ``ZCARD`` and one ``ZRANGE`` by rank
(nearest rank: the value at rank ⌈p·n⌉): O(log n) whatever the day's volume. Definitions:

- conversations: chats with at least one shopper message that day;
- containment: 1 − handed / conversations (the share the bot handled alone);
- wrong-answer share: chats the bot answered and that then said "not helpful" or were handed off,
  over the chats the bot answered;
- queue wait: ticket opened → first claim; first response: ticket opened → first agent message;
  resolution: ticket opened → closed; length: shopper and agent messages after the handoff;
- CSAT: ratings 1–5 of the day's closed tickets; response rate: rated / closed (resolved or
  returned to the bot; cancelled tickets are not asked).

A group's or an agent's report (``g:{group}``, ``a:{agent}``) counts the tickets of that scope
closed (or cancelled) that day — a conversation reaches a group only through a handoff, so a chat
the bot handled alone belongs to no group and is counted store-wide only. In a scope:
conversations = handed off = the scope's conversations; containment is not defined (``None``);
wrong-answer share = of those the bot had answered before the handoff, the share it had answered
wrongly; handoffs by reason, alerts by rule and the hourly handoffs (by opening hour) are the
scope's. The top answered and unanswered knowledge entries and the length per group stay
store-wide (listed in ``Report.store_wide``).

Days older than a week are rolled up (:mod:`quality.rollup`): their reports kept as JSON in
``qa_rollup_key(day)``, their raw counters deleted; :meth:`Reports.report` reads those first.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from pydantic import BaseModel, Field

from handoff.models import Ticket, TicketStatus
from kefu.conversation import BotAnalysis, ConversationStore, Role, Turn
from kefu.keys import (
    qa_conv_alerts_key,
    qa_record_key,
    qa_report_key,
    qa_rollup_key,
    qa_ticket_alerts_key,
)

REPORT_TTL_DAYS = 90
REPORT_TTL_SECONDS = REPORT_TTL_DAYS * 24 * 3600
RECORD_TTL_SECONDS = 90 * 24 * 3600
CONV_ALERTS_TTL_SECONDS = 2 * 24 * 3600
NOT_HELPFUL = "/feedback_not_helpful"
HELPFUL = "/feedback_helpful"
DURATIONS = ("wait", "frt", "resolution", "length")
STORE_WIDE = ("top_answered", "top_unanswered", "length_by_group")  # never filtered by scope

# ZADD NX a member; when it is new, HINCRBY a counter. KEYS: zset, counts hash; ARGV: score,
# member, counter field (empty: none), ttl. Returns 1 when the member is new.
_FIRST_LUA = """
local added = redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
if added == 1 and ARGV[3] ~= '' then
  redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
return added
"""


class QaRecord(BaseModel):
    """What quality control keeps of one closed ticket (one CSV row)."""

    ticket_id: str
    conversation_id: str
    channel: str
    group: str
    agent: str | None
    reason: str
    status: TicketStatus
    opened_at: datetime
    claimed_at: datetime | None
    first_response_at: datetime | None
    closed_at: datetime
    wait_seconds: float | None
    first_response_seconds: float | None
    resolution_seconds: float
    messages: int  # shopper and agent messages after the handoff
    rating: int | None = None
    rules_hit: list[str] = Field(default_factory=list)
    over_limits: list[str] = Field(default_factory=list)  # time rules the ticket broke
    bot_wrong_before: bool = False  # the bot had answered and was judged wrong before the handoff
    bot_answered_before: bool = False  # the bot had answered (有帮助/没帮助) before the handoff
    review_score: int | None = None  # a supervisor's manual score, 1–5
    review_comment: str = ""
    reviewed_by: str | None = None


class Percentiles(BaseModel):
    """p50 and p95 (nearest rank) of one duration, and how many values there are."""

    n: int
    p50: float | None
    p95: float | None


class TopEntry(BaseModel):
    """A knowledge entry and how often it answered (or was the nearest to an unanswered one)."""

    entry_id: str
    question: str
    count: int


class Report(BaseModel):
    """The figures of one day, for the store or one group or agent."""

    day: date
    scope: str  # "store", "g:{group}" or "a:{agent}"
    conversations: int
    handed_off: int
    containment: float | None
    answered: int
    wrong: int
    wrong_share: float | None
    handoffs_by_reason: dict[str, int]
    wait: Percentiles
    first_response: Percentiles
    resolution: Percentiles
    length: Percentiles
    length_by_group: dict[str, Percentiles]
    closed: int
    csat: dict[str, int]  # "1".."5" → count
    csat_response_rate: float | None
    alerts_by_rule: dict[str, int]
    hourly_conversations: list[int]
    hourly_handoffs: list[int]
    top_answered: list[TopEntry]
    top_unanswered: list[TopEntry]
    store_wide: list[str] = Field(default_factory=list)  # figures a scope does not filter


def nearest_rank(n: int, p: float) -> int:
    """The 0-based index of the p-th percentile among ``n`` sorted values (nearest rank)."""
    return max(0, math.ceil(p * n) - 1)


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """``end - start`` in seconds, when both are known."""
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


class Reports:
    """Writes the counters as events happen and reads reports, drill-downs and records."""

    def __init__(self, redis: aioredis.Redis, conversations: ConversationStore, *,
                 timezone: str, groups: list[str]) -> None:
        self._redis = redis
        self._conversations = conversations
        self._zone = ZoneInfo(timezone)
        self.groups = groups

    def day_of(self, at: datetime) -> str:
        """The shop's local day of ``at`` (``YYYY-MM-DD``)."""
        return at.astimezone(self._zone).date().isoformat()

    def _hour(self, at: datetime) -> str:
        return f"h{at.astimezone(self._zone).hour:02d}"

    async def _first(self, day: str, name: str, member: str, at: datetime,
                     counter: str = "") -> bool:
        added = await self._redis.eval(
            _FIRST_LUA, 2, qa_report_key(day, name), qa_report_key(day, "counts"),
            at.timestamp(), member, counter, REPORT_TTL_SECONDS)
        return bool(added)

    # --- writes -------------------------------------------------------------------------------

    async def message(self, conversation_id: str, turn: Turn) -> None:
        """Count a shopper message or a bot answer."""
        day = self.day_of(turn.at)
        if turn.role is Role.SHOPPER:
            await self._first(day, "convs", conversation_id, turn.at,
                              f"{self._hour(turn.at)}:convs")
            if turn.text.strip() == NOT_HELPFUL:
                await self._first(day, "wrong", conversation_id, turn.at)
        elif turn.role is Role.BOT and any(b.payload == HELPFUL for b in turn.buttons):
            await self._first(day, "answered", conversation_id, turn.at)

    async def analysis(self, analysis: BotAnalysis) -> None:
        """Count the entry the bot answered with, or the topic it could not answer.

        A topic is the knowledge entry nearest to a question the decision handed off (its best
        candidate): paraphrases of one unanswered question land on one topic.
        """
        if analysis.decision == "answer" and analysis.entry_id:
            entry, question, name = analysis.entry_id, "", "top-answered"
            if analysis.candidates and analysis.candidates[0].entry_id == entry:
                question = analysis.candidates[0].question
        elif analysis.decision == "handoff" and analysis.candidates:
            best = analysis.candidates[0]
            entry, question, name = best.entry_id, best.question, "top-unanswered"
        else:
            return
        day = self.day_of(analysis.at)
        async with self._redis.pipeline(transaction=True) as pipe:
            for key_name in (name, "entry-questions"):
                pipe.expire(qa_report_key(day, key_name), REPORT_TTL_SECONDS)
            pipe.zincrby(qa_report_key(day, name), 1, entry)
            if question:
                pipe.hset(qa_report_key(day, "entry-questions"), entry, question)
            await pipe.execute()

    async def ticket_opened(self, ticket: Ticket) -> None:
        """Count a new ticket once (a requeue or transfer is not a new handoff)."""
        day, at = self.day_of(ticket.created_at), ticket.created_at
        if not await self._first(day, "tickets", ticket.id, at):
            return
        reason = ticket.reason.value
        await self._first(day, "handed", ticket.conversation_id, at)
        await self._first(day, f"handoff:{reason}", ticket.conversation_id, at)
        async with self._redis.pipeline(transaction=True) as pipe:
            counts = qa_report_key(day, "counts")
            pipe.hincrby(counts, f"handoff:{reason}", 1)
            pipe.hincrby(counts, f"{self._hour(at)}:handoffs", 1)
            pipe.zscore(qa_report_key(day, "answered"), ticket.conversation_id)
            results = await pipe.execute()
        if results[2] is not None:
            await self._first(day, "wrong", ticket.conversation_id, at)

    async def ticket_closed(self, ticket: Ticket, over_limits: list[str]) -> QaRecord | None:
        """Keep the QA record of a closed ticket and count its figures (once)."""
        if ticket.closed_at is None:
            return None
        day = self.day_of(ticket.closed_at)
        if not await self._first(day, "ended", ticket.id, ticket.closed_at):
            return await self.record(ticket.id)
        record = await self._record_of(ticket, over_limits)
        values = {"wait": record.wait_seconds, "frt": record.first_response_seconds,
                  "resolution": record.resolution_seconds, "length": float(record.messages)}
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(qa_record_key(ticket.id), record.model_dump_json(), ex=RECORD_TTL_SECONDS)
            self._count_scoped(pipe, day, record)
            if ticket.status is TicketStatus.CANCELLED:  # the shopper left the queue: no figures
                await pipe.execute()
                return record
            at = ticket.closed_at.timestamp()
            for dim in ["store", *self._dims(record)[1:]]:
                name = "closed" if dim == "store" else f"closed:{dim}"
                pipe.zadd(qa_report_key(day, name), {ticket.id: at})
                pipe.expire(qa_report_key(day, name), REPORT_TTL_SECONDS)
            for dim in self._dims(record):
                pipe.hincrby(qa_report_key(day, "counts"), f"closed:{dim}", 1)
                for name, value in values.items():
                    if value is not None:
                        key = qa_report_key(day, f"{name}:{dim}")
                        pipe.zadd(key, {ticket.id: value})
                        pipe.expire(key, REPORT_TTL_SECONDS)
            await pipe.execute()
        return record

    def _count_scoped(self, pipe: Any, day: str, record: QaRecord) -> None:
        """The handoff figures of the ticket's group and agent (see the module docstring)."""
        conv, at = record.conversation_id, record.closed_at.timestamp()
        sets = ["handed", f"handoff:{record.reason}"] + [f"alerts:{r}" for r in record.rules_hit]
        sets += ["answered"] if record.bot_answered_before else []
        sets += ["wrong"] if record.bot_wrong_before else []
        counts = qa_report_key(day, "counts")
        hour = self._hour(record.opened_at)
        for scope in self._dims(record)[1:]:
            for name in sets:
                key = qa_report_key(day, f"{name}:{scope}")
                pipe.zadd(key, {conv: at})
                pipe.expire(key, REPORT_TTL_SECONDS)
            for field in [f"handoff:{record.reason}", f"{hour}:handoffs",
                          *(f"alerts:{r}" for r in record.rules_hit)]:
                pipe.hincrby(counts, f"{field}:{scope}", 1)
        pipe.expire(counts, REPORT_TTL_SECONDS)

    async def rated(self, ticket: Ticket) -> None:
        """Count a rating on the day its ticket closed (a changed rating moves its count)."""
        record = await self.record(ticket.id)
        if record is None or ticket.rating is None or record.rating == ticket.rating:
            return
        day = self.day_of(record.closed_at)
        counts = qa_report_key(day, "counts")
        async with self._redis.pipeline(transaction=True) as pipe:
            for dim in self._dims(record):
                if record.rating is not None:
                    pipe.hincrby(counts, f"csat:{record.rating}:{dim}", -1)
                pipe.hincrby(counts, f"csat:{ticket.rating}:{dim}", 1)
            at = ticket.closed_at.timestamp() if ticket.closed_at else 0
            for dim in self._dims(record):
                suffix = "" if dim == "store" else f":{dim}"
                if record.rating is not None:
                    pipe.zrem(qa_report_key(day, f"csat:{record.rating}{suffix}"), ticket.id)
                pipe.zadd(qa_report_key(day, f"csat:{ticket.rating}{suffix}"), {ticket.id: at})
                pipe.expire(qa_report_key(day, f"csat:{ticket.rating}{suffix}"),
                            REPORT_TTL_SECONDS)
            pipe.set(qa_record_key(ticket.id), record.model_copy(
                update={"rating": ticket.rating}).model_dump_json(), ex=RECORD_TTL_SECONDS)
            await pipe.execute()

    async def alerted(self, rule_id: str, conversation_id: str, ticket_id: str | None,
                      at: datetime) -> None:
        """Count an alert by rule, and remember it on the ticket for its QA record."""
        day = self.day_of(at)
        await self._first(day, f"alerts:{rule_id}", conversation_id, at)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(qa_report_key(day, "counts"), f"alerts:{rule_id}", 1)
            for key in [qa_conv_alerts_key(conversation_id)] + (
                    [qa_ticket_alerts_key(ticket_id)] if ticket_id else []):
                pipe.sadd(key, rule_id)
                pipe.expire(key, CONV_ALERTS_TTL_SECONDS)
            await pipe.execute()

    async def review(self, ticket_id: str, by: str, score: int, comment: str) -> QaRecord | None:
        """A supervisor's manual score and comment on a QA record."""
        record = await self.record(ticket_id)
        if record is None:
            return None
        record = record.model_copy(update={"review_score": score, "review_comment": comment,
                                           "reviewed_by": by})
        await self._redis.set(qa_record_key(ticket_id), record.model_dump_json(),
                              ex=RECORD_TTL_SECONDS)
        return record

    async def _record_of(self, ticket: Ticket, over_limits: list[str]) -> QaRecord:
        assert ticket.closed_at is not None
        turns = await self._conversations.transcript(ticket.conversation_id,
                                                     after=ticket.context.handoff_turn_id)
        messages = sum(1 for t in turns if t.role in (Role.SHOPPER, Role.AGENT))
        rules = await self._redis.sunion([qa_ticket_alerts_key(ticket.id),
                                          qa_conv_alerts_key(ticket.conversation_id)])
        opened = self.day_of(ticket.created_at)
        wrong = await self._redis.zscore(qa_report_key(opened, "wrong"), ticket.conversation_id)
        answered = await self._redis.zscore(qa_report_key(opened, "answered"),
                                            ticket.conversation_id)
        return QaRecord(
            ticket_id=ticket.id, conversation_id=ticket.conversation_id, channel=ticket.channel,
            group=ticket.group, agent=ticket.agent, reason=ticket.reason.value,
            status=ticket.status, opened_at=ticket.created_at, claimed_at=ticket.claimed_at,
            first_response_at=ticket.first_response_at, closed_at=ticket.closed_at,
            wait_seconds=seconds_between(ticket.created_at, ticket.claimed_at),
            first_response_seconds=seconds_between(ticket.created_at, ticket.first_response_at),
            resolution_seconds=seconds_between(ticket.created_at, ticket.closed_at) or 0.0,
            messages=messages, rating=ticket.rating, rules_hit=sorted(str(r) for r in rules),
            over_limits=over_limits, bot_wrong_before=wrong is not None,
            bot_answered_before=answered is not None)

    @staticmethod
    def _dims(record: QaRecord) -> list[str]:
        dims = ["store", f"g:{record.group}"]
        if record.agent:
            dims.append(f"a:{record.agent}")
        return dims

    # --- reads --------------------------------------------------------------------------------

    async def record(self, ticket_id: str) -> QaRecord | None:
        """The QA record of a closed ticket."""
        raw = await self._redis.get(qa_record_key(ticket_id))
        return QaRecord.model_validate_json(raw) if raw else None

    async def records(self, day: date, *, scope: str = "store", limit: int = 10_000
                      ) -> list[QaRecord]:
        """The QA records of the tickets closed on ``day`` (of the scope), oldest first."""
        ids = await self._redis.zrange(qa_report_key(day.isoformat(), "closed"), 0, limit - 1)
        if not ids:
            return []
        raws = await self._redis.mget([qa_record_key(str(i)) for i in ids])
        found = [QaRecord.model_validate_json(r) for r in raws if r]
        return [r for r in found if scope == "store" or scope in self._dims(r)]

    async def percentiles(self, day: str, name: str, scope: str) -> Percentiles:
        """p50 and p95 of a duration (nearest rank) from its sorted set: two or three commands."""
        key = qa_report_key(day, f"{name}:{scope}")
        n = int(await self._redis.zcard(key))
        if n == 0:
            return Percentiles(n=0, p50=None, p95=None)
        out = []
        for p in (0.5, 0.95):
            i = nearest_rank(n, p)
            rows = cast(list[tuple[Any, float]],
                        await self._redis.zrange(key, i, i, withscores=True))
            out.append(round(float(rows[0][1]), 3))
        return Percentiles(n=n, p50=out[0], p95=out[1])

    async def report(self, day: date, scope: str = "store") -> Report:
        """The day's figures for the store, ``g:{group}`` or ``a:{agent}``.

        From the day's roll-up when it was rolled up (a scope it did not count: zero figures, the
        store-wide ones from the store's), else from its counters.
        """
        rolled = await self._redis.hmget(qa_rollup_key(day.isoformat()), [scope, "store"])
        if rolled[0]:
            return Report.model_validate_json(rolled[0])
        raw = await self.raw_report(day, scope)
        if rolled[1]:
            store = Report.model_validate_json(rolled[1])
            raw = raw.model_copy(update={name: getattr(store, name) for name in STORE_WIDE})
        return raw

    async def raw_report(self, day: date, scope: str) -> Report:
        """The day's figures from its raw counters (what a roll-up keeps)."""
        d = day.isoformat()
        counts = {str(k): int(v) for k, v in (await self._redis.hgetall(
            qa_report_key(d, "counts"))).items()}
        by_scope = scope != "store"
        suffix = f":{scope}" if by_scope else ""
        sizes = {}
        for name in ("handed", "answered", "wrong") + (() if by_scope else ("convs",)):
            sizes[name] = int(await self._redis.zcard(qa_report_key(d, name + suffix)))
        if by_scope:  # a group's or agent's conversations all reached it by a handoff
            sizes["convs"] = sizes["handed"]
        hourly_handoffs = [counts.get(f"h{h:02d}:handoffs{suffix}", 0) for h in range(24)]
        closed = counts.get(f"closed:{scope}", 0)
        csat = {str(s): counts.get(f"csat:{s}:{scope}", 0) for s in range(1, 6)}
        durations = {n: await self.percentiles(d, n, scope) for n in DURATIONS}
        return Report(
            day=day, scope=scope, conversations=sizes["convs"], handed_off=sizes["handed"],
            containment=None if by_scope else _share(sizes["convs"] - sizes["handed"],
                                                     sizes["convs"]),
            answered=sizes["answered"], wrong=sizes["wrong"],
            wrong_share=_share(sizes["wrong"], sizes["answered"]),
            handoffs_by_reason=_keyed(counts, "handoff:", scope),
            wait=durations["wait"], first_response=durations["frt"],
            resolution=durations["resolution"], length=durations["length"],
            length_by_group={g: await self.percentiles(d, "length", f"g:{g}")
                             for g in self.groups},
            closed=closed, csat=csat, csat_response_rate=_share(sum(csat.values()), closed),
            alerts_by_rule=_keyed(counts, "alerts:", scope),
            hourly_conversations=hourly_handoffs if by_scope else [
                counts.get(f"h{h:02d}:convs", 0) for h in range(24)],
            hourly_handoffs=hourly_handoffs,
            top_answered=await self._top(d, "top-answered"),
            top_unanswered=await self._top(d, "top-unanswered"),
            store_wide=list(STORE_WIDE) if by_scope else [])

    async def _top(self, day: str, name: str, count: int = 10) -> list[TopEntry]:
        rows = cast(list[tuple[Any, float]], await self._redis.zrevrange(
            qa_report_key(day, name), 0, count - 1, withscores=True))
        if not rows:
            return []
        ids = [str(r[0]) for r in rows]
        questions = await self._redis.hmget(qa_report_key(day, "entry-questions"), ids)
        return [TopEntry(entry_id=i, question=str(q or ""), count=int(s))
                for i, q, (_m, s) in zip(ids, questions, rows, strict=True)]

    async def drill(self, day: date, figure: str, limit: int = 200) -> list[str]:
        """The conversations (or tickets) behind a figure, newest first.

        ``figure``: ``convs``, ``handed``, ``answered``, ``wrong``, ``handoff:{reason}``,
        ``alerts:{rule}`` (conversation ids); ``closed``, ``csat:{score}`` (ticket ids);
        ``wait:{scope}``, ``frt:{scope}``, ``resolution:{scope}``, ``length:{scope}`` (ticket
        ids, largest first). A group's or agent's: the figure followed by ``:{scope}``
        (``handed:g:presale``, ``handoff:complaint:a:li``, ``closed:g:presale``); its
        conversations are ``handed:{scope}``.
        """
        key = qa_report_key(day.isoformat(), figure)
        members = await self._redis.zrevrange(key, 0, limit - 1)
        return [str(m) for m in members]


def _keyed(counts: dict[str, int], prefix: str, scope: str) -> dict[str, int]:
    """``{key: n}`` of the ``{prefix}{key}`` counters (store) or ``{prefix}{key}:{scope}``."""
    found = {}
    for field, n in counts.items():
        if not field.startswith(prefix):
            continue
        key = field[len(prefix):]
        if scope != "store":
            if not key.endswith(f":{scope}"):
                continue
            key = key[:-len(scope) - 1]
        if ":" not in key:
            found[key] = n
    return found


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None

