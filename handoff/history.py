"""The console's history: resolved conversations an agent may look back at, searched and read-only.

An agent sees the chats of the groups they serve and the ones they handled; a manager sees all.
One search box finds a chat by the shopper (name, visitor label, conversation id), an order number
(however it is typed) or any words said (summary, resolution note, the bot part and the human
part of the transcript); a date range narrows it by closing time. A shopper who writes again
within :data:`REOPEN_WINDOW` of the close can be taken back (`HandoffService.reopen`).

Closed tickets are indexed by closing time (``closed_key``) and kept ``closed_ttl_days``; the
human part of a transcript lives as long as the conversation record (a week).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from handoff import transitions
from handoff.models import HistoryItem, Ticket, TicketStatus
from handoff.store import TicketStore
from kefu.accounts import Agent
from kefu.conversation import ConversationStore, Role, Turn
from kefu.orders import find_order_number

REOPEN_WINDOW = timedelta(days=1)
"""How long after the close a shopper's new message lets an agent reopen the chat."""

SCAN_MAX = 2000
"""Closed tickets a search reads at most, newest first."""

_CHUNK = 200
_TAIL = 50  # turns read from the end of a conversation to see whether the shopper wrote again
_RESOLVED = (TicketStatus.RESOLVED, TicketStatus.RETURNED)


@dataclass(frozen=True)
class HistoryQuery:
    """What the agent typed and picked in the history search."""

    text: str = ""  # shopper, order number or words said; empty: every chat
    since: datetime | None = None  # closed at or after
    until: datetime | None = None  # closed at or before
    limit: int = 50


def _fold(text: str) -> str:
    return "".join(text.casefold().split())


def ticket_texts(ticket: Ticket) -> list[str]:
    """What a search looks through on the ticket itself."""
    ctx = ticket.context
    return [ctx.shopper, ctx.conversation_id, ctx.summary, ticket.resolution_note or "",
            *ctx.slots.values(), *(t.text for t in ctx.transcript)]


def matches(needle: str, texts: Iterable[str]) -> bool:
    """Whether ``needle`` is in any of ``texts`` (case, spaces and order-number dashes aside)."""
    folded = _fold(needle)
    if not folded:
        return True
    order = find_order_number(needle)
    for text in texts:
        if folded in _fold(text) or (order is not None and order in _fold(text).upper()):
            return True
    return False


def wrote_again(ticket: Ticket, turns: Sequence[Turn]) -> Turn | None:
    """What the shopper first typed after the ticket closed (a rating is not that)."""
    if ticket.closed_at is None:
        return None
    for turn in turns:
        if turn.role is Role.SHOPPER and turn.at > ticket.closed_at \
                and not turn.text.startswith("/"):
            return turn
    return None


class History:
    """Searches closed tickets for one agent."""

    def __init__(self, tickets: TicketStore, conversations: ConversationStore) -> None:
        self._tickets = tickets
        self._conversations = conversations

    async def search(self, agent: Agent, query: HistoryQuery) -> list[HistoryItem]:
        """The agent's resolved chats matching ``query``, newest first."""
        ids = await self._tickets.closed_ids_between(query.since, query.until, SCAN_MAX)
        found: list[Ticket] = []
        for start in range(0, len(ids), _CHUNK):
            chunk = [t for t in await self._tickets.many(ids[start:start + _CHUNK])
                     if t.status in _RESOLVED and transitions.visible(t, agent)]
            found += await self._matching(chunk, query.text)
            if len(found) >= query.limit:
                break
        return [await self.item(t) for t in found[:query.limit]]

    async def item(self, ticket: Ticket) -> HistoryItem:
        """The ticket with whether its shopper wrote again and whether it can be reopened."""
        conv = ticket.conversation_id
        tail, open_now, last = await asyncio.gather(
            self._conversations.tail(conv, _TAIL), self._tickets.open_for(conv),
            self._tickets.last_closed_id(conv))
        again = wrote_again(ticket, tail)
        can = (again is not None and ticket.closed_at is not None
               and again.at - ticket.closed_at <= REOPEN_WINDOW and open_now is None
               and last == ticket.id)
        return HistoryItem(ticket=ticket, wrote_again_at=again.at if again else None,
                           wrote_again=again.text if again else None, can_reopen=can)

    async def _matching(self, tickets: list[Ticket], needle: str) -> list[Ticket]:
        if not needle.strip():
            return tickets
        hits = {t.id for t in tickets if matches(needle, ticket_texts(t))}
        rest = [t for t in tickets if t.id not in hits]
        parts = await asyncio.gather(*(self._human_part(t) for t in rest))
        hits |= {t.id for t, turns in zip(rest, parts, strict=True)
                 if matches(needle, (turn.text for turn in turns))}
        return [t for t in tickets if t.id in hits]

    async def _human_part(self, ticket: Ticket) -> list[Turn]:
        turns = await self._conversations.transcript(ticket.conversation_id,
                                                     after=ticket.context.handoff_turn_id)
        end = ticket.closed_at
        return [t for t in turns if end is None or t.at <= end]
