"""Telling people what happened to a ticket: the shopper by system turns, consoles by events.

Every system turn carries where the chat stands afterwards (`ChatStatus` in ``meta["status"]``),
which the web widget shows as its status banner; every change goes out on the handoff events
channel for live consoles. Queue positions and wait estimates are worked out here too, since
they are only ever computed to be told.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from handoff import messages
from handoff.events import EventBus
from handoff.models import ChatState, ChatStatus, EventType, HandoffEvent, Ticket, TicketStatus
from handoff.settings import HandoffSettings
from handoff.store import Change, TicketStore
from kefu.accounts import AgentDirectory
from kefu.conversation import Button, ConversationStore, Role, Turn


class Announcer:
    """System messages to shoppers and events to consoles, for the handoff service."""

    def __init__(self, tickets: TicketStore, conversations: ConversationStore, events: EventBus,
                 agents: AgentDirectory, settings: HandoffSettings,
                 clock: Callable[[], datetime]) -> None:
        self._tickets = tickets
        self._conversations = conversations
        self._events = events
        self._agents = agents
        self._settings = settings
        self._clock = clock

    async def tell(self, ticket: Ticket, text: str, *, buttons: list[Button] | None = None,
                   status: ChatStatus | None = None) -> Turn:
        """A system message to the shopper; ``status`` is where the chat stands after it."""
        meta: dict[str, Any] = {"ticket_id": ticket.id}
        if status is not None:
            meta["status"] = status.model_dump(mode="json", exclude_none=True)
        turn = await self._conversations.append(ticket.conversation_id, Role.SYSTEM, text,
                                                buttons=buttons, meta=meta)
        await self.publish(EventType.TURN, ticket, turn=turn)
        return turn

    async def publish(self, kind: EventType, ticket: Ticket, *, turn: Turn | None = None,
                      previous_agent: str | None = None) -> None:
        """Push what happened to every console that may see the ticket."""
        await self._events.publish(HandoffEvent(
            type=kind, ticket_id=ticket.id, conversation_id=ticket.conversation_id,
            group=ticket.group, status=ticket.status, priority=ticket.priority, agent=ticket.agent,
            previous_agent=previous_agent, turn=turn, at=self._clock()))

    async def waiting(self, ticket: Ticket, compose: Callable[[int, int], str], *,
                      previous_agent: str | None = None) -> None:
        """Tell the shopper their position and wait, and push the ticket to consoles."""
        position = await self.position(ticket) or 1
        wait = (await self.estimator(ticket.group))(position)
        await self.tell(ticket, compose(position, wait),
                        buttons=[messages.back_to_bot_button(ticket.context.language)],
                        status=waiting_status(ticket, position))
        await self.publish(EventType.TICKET_WAITING, ticket, previous_agent=previous_agent)

    async def moves(self, change: Change) -> None:
        """A ticket left a queue: the first few behind it are told their new position."""
        rank, before, after = change.queue_rank, change.before, change.after
        if rank is None or (after.status is TicketStatus.WAITING and after.group == before.group):
            return
        limit = self._settings.position_updates
        if rank >= limit:
            return
        ids = await self._tickets.waiting_ids(before.group, rank, limit - 1)
        estimate = await self.estimator(before.group)
        for offset, ticket in enumerate(await self._tickets.many(ids)):
            if not ticket.offline:
                position = rank + offset + 1
                await self.tell(ticket, messages.queued(ticket.context.language, position,
                                                        estimate(position)),
                                buttons=[messages.back_to_bot_button(ticket.context.language)],
                                status=waiting_status(ticket, position))

    async def position(self, ticket: Ticket) -> int | None:
        """1-based position of a waiting ticket in its group's queue (``None`` if not waiting)."""
        if ticket.status is not TicketStatus.WAITING:
            return None
        rank = await self._tickets.rank(ticket)
        return None if rank is None else rank + 1

    async def estimator(self, group: str) -> Callable[[int], int]:
        """Seconds to wait at a position: recent average handling time over agents online."""
        samples = await self._tickets.handling_times(group)
        average = sum(samples) / len(samples) if samples else self._settings.default_handle_seconds
        agents = max(1, await self._agents.online_count(group))
        return lambda position: math.ceil(average * position / agents)


def waiting_status(ticket: Ticket, position: int) -> ChatStatus:
    """The status of a waiting ticket: its place in the queue, or a message left for later."""
    if ticket.offline:
        return ChatStatus(state=ChatState.MESSAGE_LEFT)
    return ChatStatus(state=ChatState.WAITING, ahead=max(0, position - 1))
