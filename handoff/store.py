"""Tickets in Redis: the ticket JSON, the per-group queues, leases and the indexes around them.

Every state change goes through :meth:`TicketStore.change`: an optimistic transaction (WATCH the
ticket and its lease, read, decide, MULTI/EXEC) whose Redis side effects are derived from the
before/after difference by :func:`_persist`. So the queue, lease, claimed/closed indexes and the
conversation's open-ticket pointer can never disagree with the ticket, whichever operation ran,
and of two agents claiming at once exactly one EXEC succeeds.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from handoff.errors import TicketNotFound
from handoff.models import Ticket, TicketStatus
from handoff.settings import HandoffSettings
from handoff.transitions import Transition
from kefu.keys import (
    claimed_key,
    closed_key,
    handling_times_key,
    last_ticket_key,
    lease_key,
    open_ticket_key,
    queue_key,
    ticket_key,
    ticket_seq_key,
)

LAST_TICKET_TTL_SECONDS = 30 * 24 * 3600

# KEYS: open pointer, ticket, queue. ARGV: ticket id, ticket JSON, queue score.
# Returns the id of the conversation's open ticket: the new one, or the one already there.
_CREATE = """
local existing = redis.call('GET', KEYS[1])
if existing then return existing end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return ARGV[1]
"""

# KEYS: lease. ARGV: agent, lease milliseconds. Extends the lease only if the agent holds it.
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""



@dataclass(frozen=True)
class Change:
    """The outcome of :meth:`TicketStore.change`."""

    before: Ticket
    after: Ticket
    queue_rank: int | None  # 0-based rank in the old group's queue before the change


class TicketStore:
    """Reads tickets and applies state changes atomically."""

    def __init__(self, redis: aioredis.Redis, settings: HandoffSettings) -> None:
        self._redis = redis
        self._settings = settings
        self._create = redis.register_script(_CREATE)
        self._extend = redis.register_script(_EXTEND)

    # --- reads ---------------------------------------------------------------------------------

    async def find(self, ticket_id: str) -> Ticket | None:
        """The ticket, or ``None``."""
        raw = await self._redis.get(ticket_key(ticket_id))
        return Ticket.model_validate_json(raw) if raw is not None else None

    async def get(self, ticket_id: str) -> Ticket:
        """The ticket, or :class:`TicketNotFound`."""
        ticket = await self.find(ticket_id)
        if ticket is None:
            raise TicketNotFound(f"no ticket {ticket_id}", ticket_id=ticket_id)
        return ticket

    async def many(self, ticket_ids: Sequence[str]) -> list[Ticket]:
        """Tickets in the given order, skipping ids that are gone."""
        if not ticket_ids:
            return []
        rows = await self._redis.mget([ticket_key(t) for t in ticket_ids])
        return [Ticket.model_validate_json(r) for r in rows if r is not None]

    async def open_for(self, conversation_id: str) -> Ticket | None:
        """The conversation's open ticket: one GET for the pointer, one for the ticket."""
        ticket_id = cast(str | None, await self._redis.get(open_ticket_key(conversation_id)))
        if ticket_id is None:
            return None
        ticket = await self.find(ticket_id)
        return ticket if ticket is not None and ticket.status.is_open else None

    async def last_closed_id(self, conversation_id: str) -> str | None:
        """The conversation's most recently closed ticket id."""
        return cast(str | None, await self._redis.get(last_ticket_key(conversation_id)))

    async def rank(self, ticket: Ticket) -> int | None:
        """0-based rank of a waiting ticket in its group's queue."""
        rank = cast(int | None, await self._redis.zrank(queue_key(ticket.group), ticket.id))
        return rank

    async def waiting_ids(self, group: str, start: int = 0, stop: int = -1) -> list[str]:
        """Ids in a group's queue, best first."""
        return cast(list[str], await self._redis.zrange(queue_key(group), start, stop))

    async def queue_length(self, group: str) -> int:
        """How many tickets wait in a group."""
        return int(await self._redis.zcard(queue_key(group)))

    async def claimed_ids(self) -> list[str]:
        """Ids of every claimed ticket, oldest claim first."""
        return cast(list[str], await self._redis.zrange(claimed_key(), 0, -1))

    async def closed_ids(self, limit: int) -> list[str]:
        """Ids of the newest closed tickets."""
        return cast(list[str], await self._redis.zrevrange(closed_key(), 0, limit - 1))

    async def closed_ids_between(self, since: datetime | None, until: datetime | None,
                                 limit: int) -> list[str]:
        """Ids of tickets closed between two times (either open-ended), newest first."""
        top = until.timestamp() if until is not None else "+inf"
        bottom = since.timestamp() if since is not None else "-inf"
        return cast(list[str], await self._redis.zrevrangebyscore(
            closed_key(), top, bottom, start=0, num=limit))

    async def lapsed(self, ticket_ids: Sequence[str]) -> list[str]:
        """Those of ``ticket_ids`` whose lease key is gone."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for ticket_id in ticket_ids:
                pipe.exists(lease_key(ticket_id))
            alive = await pipe.execute()
        return [t for t, a in zip(ticket_ids, alive, strict=True) if not a]

    async def handling_times(self, group: str) -> list[float]:
        """Recent claim-to-close durations of a group in seconds, newest first."""
        rows = await self._redis.lrange(handling_times_key(group), 0,
                                        self._settings.handle_samples - 1)
        return [float(r) for r in rows]

    # --- writes --------------------------------------------------------------------------------

    async def next_seq(self) -> int:
        """The next first-come number."""
        return int(await self._redis.incr(ticket_seq_key()))

    async def create(self, ticket: Ticket) -> str:
        """Store a new waiting ticket unless the conversation has an open one; the open id."""
        keys = [open_ticket_key(ticket.conversation_id), ticket_key(ticket.id),
                queue_key(ticket.group)]
        result = await self._create(keys=keys,
                                    args=[ticket.id, ticket.model_dump_json(), ticket.queue_score])
        return str(result)

    async def drop_dangling_pointer(self, conversation_id: str, ticket_id: str) -> None:
        """Remove an open pointer whose ticket is gone (only if it still points there)."""
        key = open_ticket_key(conversation_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                if await pipe.get(key) == ticket_id:
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.delete(key)
                    await pipe.execute()
            except WatchError:
                pass

    async def extend_lease(self, ticket_id: str, agent: str) -> bool:
        """Renew ``agent``'s lease; ``False`` when they do not hold it (any more)."""
        ms = int(self._settings.lease_seconds * 1000)
        return bool(await self._extend(keys=[lease_key(ticket_id)], args=[agent, ms]))

    async def record_handling(self, group: str, seconds: float) -> None:
        """Remember one claim-to-close duration for wait estimates."""
        key = handling_times_key(group)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, f"{seconds:.1f}")
            pipe.ltrim(key, 0, self._settings.handle_samples - 1)
            await pipe.execute()

    async def change(self, ticket_id: str, transition: Transition) -> Change:
        """Apply ``transition`` atomically, retrying when another writer got in between."""
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    return await self._try_change(pipe, ticket_id, transition)
                except WatchError:
                    continue

    async def _try_change(self, pipe: Pipeline, ticket_id: str, transition: Transition) -> Change:
        await pipe.watch(ticket_key(ticket_id), lease_key(ticket_id))
        raw = await pipe.get(ticket_key(ticket_id))
        if raw is None:
            raise TicketNotFound(f"no ticket {ticket_id}", ticket_id=ticket_id)
        before = Ticket.model_validate_json(raw)
        holder = cast(str | None, await pipe.get(lease_key(ticket_id)))
        rank: int | None = None
        if before.status is TicketStatus.WAITING:
            rank = cast(int | None, await pipe.zrank(queue_key(before.group), ticket_id))
        after = transition(before.model_copy(deep=True), holder)
        pipe.multi()  # type: ignore[no-untyped-call]
        self._persist(pipe, before, after)
        await pipe.execute()
        return Change(before, after, rank)

    def _persist(self, pipe: Pipeline, before: Ticket, after: Ticket) -> None:
        ticket_id, now = after.id, time.time()
        if after.status.is_open:
            pipe.set(ticket_key(ticket_id), after.model_dump_json())
        else:
            pipe.set(ticket_key(ticket_id), after.model_dump_json(),
                     ex=self._settings.closed_ttl_days * 24 * 3600)
        was_waiting, is_waiting = (t.status is TicketStatus.WAITING for t in (before, after))
        if was_waiting and (not is_waiting or before.group != after.group):
            pipe.zrem(queue_key(before.group), ticket_id)
        if is_waiting:
            pipe.zadd(queue_key(after.group), {ticket_id: after.queue_score})
        was_claimed, is_claimed = (t.status is TicketStatus.CLAIMED for t in (before, after))
        if was_claimed and (not is_claimed or before.agent != after.agent):
            pipe.zrem(claimed_key(), ticket_id)
            pipe.delete(lease_key(ticket_id))
        if is_claimed:
            assert after.agent is not None
            pipe.zadd(claimed_key(), {ticket_id: now}, nx=True)
            pipe.set(lease_key(ticket_id), after.agent, px=int(self._settings.lease_seconds * 1000))
        if before.status.is_open and not after.status.is_open:
            conv = after.conversation_id
            pipe.delete(open_ticket_key(conv))
            pipe.set(last_ticket_key(conv), ticket_id, ex=LAST_TICKET_TTL_SECONDS)
            closed = after.closed_at.timestamp() if after.closed_at is not None else now
            pipe.zadd(closed_key(), {ticket_id: closed})
            pipe.zremrangebyrank(closed_key(), 0, -self._settings.closed_index_max - 1)
