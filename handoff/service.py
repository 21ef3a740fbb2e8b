"""The handoff service: tickets from the bot's handoff to the agent's resolve and back to the bot.

All state lives in Redis (see :mod:`handoff.store`), so any number of kefu processes can run it
and a restart mid-handoff loses nothing. The rules of each step are in :mod:`handoff.transitions`;
this module sequences them; :mod:`handoff.announce` tells the shopper (system turns in the
conversation transcript, the outbox every channel reads, each with the chat's status) and the
consoles (the handoff events channel); :mod:`handoff.history` searches resolved chats.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any

import redis.asyncio as aioredis

from handoff import messages, transitions
from handoff.announce import Announcer
from handoff.context import REASON_LABELS, build_packet, default_priority, infer_group
from handoff.errors import (
    AgentUnavailable,
    AlreadyClaimed,
    InvalidInput,
    RatingNotAllowed,
    TicketNotFound,
    TicketStateError,
)
from handoff.events import EventBus
from handoff.history import History, HistoryQuery
from handoff.models import (
    Availability,
    ChatState,
    ChatStatus,
    EventType,
    HandoffReason,
    HistoryItem,
    Priority,
    Ticket,
    TicketStatus,
)
from handoff.settings import HandoffSettings, get_settings
from handoff.store import TicketStore
from kefu import metrics
from kefu.accounts import Agent, AgentDirectory, AgentRole, Presence
from kefu.conversation import ConversationStore, Role, Turn, utcnow
from kefu.errors import NotAuthorized
from kefu.orders import find_order_number
from kefu.redis import async_client

logger = logging.getLogger(__name__)

Screen = Callable[[Ticket, Agent, str], Awaitable[None]]
"""Hook called with an agent's message before it is kept; raising stops it (quality control's
"block and warn" rules, wired by the app)."""

OnReturn = Callable[[Ticket, list[Turn]], Awaitable[None]]
"""Hook called when a ticket is resolved with ``return_to_bot``: the gateway appends the human
part (shopper and agent turns since the handoff) to the Rasa tracker."""

_BACK_TO_BOT = {messages.BACK_TO_BOT_PAYLOAD, "/bot", "/cancel_handoff"}


class HandoffService:
    """Tickets from handoff to return-to-bot; the one entry point for gateway, actions and API."""

    def __init__(self, redis: aioredis.Redis, conversations: ConversationStore,
                 settings: HandoffSettings | None = None, *, on_return: OnReturn | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings or get_settings()
        self.agents = AgentDirectory(redis, self.settings)
        self.events = EventBus(redis)
        self.conversations = conversations
        self._tickets = TicketStore(redis, self.settings)
        self._history = History(self._tickets, conversations)
        self._say = Announcer(self._tickets, conversations, self.events, self.agents,
                              self.settings, clock)
        self._on_return = on_return
        self._clock = clock
        self.screen: Screen | None = None

    # --- bot and gateway side -----------------------------------------------------------------

    async def request_handoff(
        self, conversation_id: str, *, reason: HandoffReason, channel: str,
        group: str | None = None, priority: Priority | None = None, summary: str | None = None,
        slots: Mapping[str, str] | None = None, display_name: str | None = None,
        detail: str | None = None,
    ) -> Ticket:
        """Open a ticket for the conversation, or return the one already open (idempotent).

        A repeated request with a higher priority (an angry shopper) raises the open ticket's.
        ``detail`` says why the bot stopped, for the summary ("2 次澄清未解决").
        """
        if group is not None:
            self._check_group(group)
        reason = HandoffReason(reason)  # callers over HTTP or from Rasa may pass plain strings
        priority = Priority(priority) if priority else default_priority(reason)
        ticket, created = await self._create(
            conversation_id, reason=reason, channel=channel, group=group, priority=priority,
            summary=summary, slots=slots, display_name=display_name, detail=detail)
        if not created:
            return await self._escalate(ticket, priority)
        metrics.HANDOFFS.labels(reason.value).inc()
        if ticket.offline:
            in_hours = self.settings.in_service_hours(ticket.created_at)
            language = ticket.context.language
            await self._say.waiting(
                ticket, lambda _p, _w: messages.offline(language, in_hours))
        else:
            await self._say.waiting(ticket, partial(messages.queued, ticket.context.language))
        return ticket

    async def _create(
        self, conversation_id: str, *, reason: HandoffReason, channel: str, group: str | None,
        priority: Priority, summary: str | None = None, slots: Mapping[str, str] | None = None,
        display_name: str | None = None, detail: str | None = None,
        reopened_from: str | None = None,
    ) -> tuple[Ticket, bool]:
        """A new waiting ticket, unannounced; or the conversation's open one (``False``)."""
        existing = await self._tickets.open_for(conversation_id)
        if existing is not None:
            return existing, False
        now, ticket_id = self._clock(), uuid.uuid4().hex[:16]
        packet = await build_packet(
            self.conversations, ticket_id=ticket_id, conversation_id=conversation_id,
            channel=channel, reason=reason, priority=priority, group=group,
            groups=self.settings.groups, default_group=self.settings.default_group,
            summary=summary, slots=slots, display_name=display_name, now=now, detail=detail)
        offline = reason is HandoffReason.OFFLINE_MESSAGE or await self._offline(packet.group, now)
        ticket = Ticket(
            id=ticket_id, conversation_id=conversation_id, channel=channel,
            status=TicketStatus.WAITING, group=packet.group, priority=priority, reason=reason,
            seq=await self._tickets.next_seq(), offline=offline, created_at=now, updated_at=now,
            reopened_from=reopened_from, context=packet)
        open_id = await self._tickets.create(ticket)
        if open_id != ticket_id:
            current = await self._tickets.find(open_id)
            if current is None:  # a pointer to a vanished ticket: clear it and try again
                await self._tickets.drop_dangling_pointer(conversation_id, open_id)
                return await self._create(
                    conversation_id, reason=reason, channel=channel, group=group,
                    priority=priority, summary=summary, slots=slots, display_name=display_name,
                    detail=detail, reopened_from=reopened_from)
            return current, False
        logger.info("ticket %s opened for %s (%s, %s, group %s, offline %s)", ticket_id,
                    conversation_id, reason, priority, ticket.group, offline)
        return ticket, True

    async def availability(self, conversation_id: str, group: str | None = None) -> Availability:
        """Whether a person of the group a handoff would go to can take the chat now.

        The bot asks before moving a shopper, so it can say nobody is online and let them choose
        to leave a message or keep trying with the bot. ``None``: the group a ticket would get.
        """
        if group is None:
            analyses = await self.conversations.analyses(conversation_id)
            group = infer_group(analyses, self.settings.groups, self.settings.default_group)
        self._check_group(group)
        return Availability(group=group, online=await self.agents.online_count(group),
                            in_hours=self.settings.in_service_hours(self._clock()))

    async def open_ticket(self, conversation_id: str) -> Ticket | None:
        """The open ticket (waiting or claimed) of a conversation: two Redis GETs."""
        return await self._tickets.open_for(conversation_id)

    async def add_shopper_message(self, conversation_id: str, text: str, *,
                                  meta: Mapping[str, Any] | None = None,
                                  ticket: Ticket | None = None) -> Turn:
        """Put a shopper message into the open ticket (never to Rasa) and push it to consoles.

        While the ticket still waits, the payload ``/back_to_bot`` leaves the queue. ``ticket`` is
        the open ticket the caller has just read, if it has (the gateway has): it is not read
        again (a ticket carries the conversation so far, so reading one is not free).
        """
        ticket = ticket or await self._tickets.open_for(conversation_id)
        if ticket is None:
            raise TicketNotFound(f"no open ticket for {conversation_id}",
                                 conversation_id=conversation_id)
        turn = await self.conversations.append(
            conversation_id, Role.SHOPPER, text, meta={**(meta or {}), "ticket_id": ticket.id})
        await self._say.publish(EventType.TURN, ticket, turn=turn)
        if text.strip() in _BACK_TO_BOT and ticket.status is TicketStatus.WAITING:
            await self._cancel(ticket)
        else:
            await self._note_order_number(ticket, text)
        return turn

    async def _note_order_number(self, ticket: Ticket, text: str) -> None:
        """An order number typed while a person owns the chat goes where the agent sees it."""
        order = find_order_number(text)
        if order is None or ticket.context.slots.get("order_number") == order:
            return
        await self.conversations.set_slot(ticket.conversation_id, "order_number", order)
        try:
            change = await self._tickets.change(ticket.id, transitions.set_slot(
                "order_number", order, self._clock()))
        except (TicketStateError, TicketNotFound):
            return  # closed meanwhile: the conversation record still has it
        await self._say.publish(EventType.TICKET_UPDATED, change.after)

    async def cancel(self, conversation_id: str) -> Ticket | None:
        """The shopper leaves the queue; a ticket an agent already owns stays open (``None``)."""
        ticket = await self._tickets.open_for(conversation_id)
        return await self._cancel(ticket) if ticket is not None else None

    async def _cancel(self, ticket: Ticket) -> Ticket | None:
        try:
            change = await self._tickets.change(ticket.id, transitions.cancel(self._clock()))
        except TicketStateError:
            return None
        await self._say.tell(change.after, messages.cancelled(change.after.context.language),
                             status=ChatStatus(state=ChatState.ENDED))
        await self._say.publish(EventType.TICKET_CLOSED, change.after)
        await self._say.moves(change)
        return change.after

    async def rate(self, conversation_id: str, score: int) -> Ticket:
        """Store the shopper's 1–5 rating on the conversation's last resolved ticket."""
        if not 1 <= score <= 5:
            raise InvalidInput("rating must be between 1 and 5", field="score")
        ticket_id = await self._tickets.last_closed_id(conversation_id)
        if ticket_id is None:
            raise RatingNotAllowed(f"nothing to rate for {conversation_id}", ticket_id="",
                                   status="none")
        change = await self._tickets.change(ticket_id, transitions.rate(score, self._clock()))
        await self._say.publish(EventType.TICKET_RATED, change.after)
        return change.after

    # --- agent side ---------------------------------------------------------------------------

    async def get(self, ticket_id: str, agent: Agent | None = None) -> Ticket:
        """A ticket; with ``agent``, only if that agent may see it."""
        ticket = await self._tickets.get(ticket_id)
        if agent is not None and not transitions.visible(ticket, agent):
            raise NotAuthorized("ticket of another group", agent=agent.username, action="view")
        return ticket

    async def transcript(self, ticket_id: str, agent: Agent | None = None,
                         after: str | None = None) -> list[Turn]:
        """The live transcript of the ticket's conversation (after the turn id ``after``)."""
        ticket = await self.get(ticket_id, agent)
        return await self.conversations.transcript(ticket.conversation_id, after=after)

    async def claim(self, ticket_id: str, agent: Agent) -> Ticket:
        """Take a ticket under a lease; of two agents claiming at once exactly one wins."""
        change = await self._tickets.change(ticket_id, transitions.claim(agent, self._clock()))
        if change.before.status is TicketStatus.WAITING:
            if change.before.claimed_at is None:  # first claim: the shopper's wait
                waited = (self._clock() - change.before.created_at).total_seconds()
                metrics.QUEUE_WAIT.labels(change.before.group).observe(max(0.0, waited))
            joined = messages.joined(change.after.context.language, agent.display_name)
            await self._say.tell(change.after, joined, status=ChatStatus(
                state=ChatState.SERVING, agent=agent.display_name))
            await self._say.publish(EventType.TICKET_CLAIMED, change.after)
            await self._say.moves(change)
        return change.after

    async def claim_next(self, agent: Agent, group: str | None = None) -> Ticket | None:
        """Claim the best waiting ticket of ``group`` (or of all the agent's groups)."""
        groups = [group] if group else self._groups_of(agent)
        for _ in range(20):
            heads = [await self._tickets.waiting_ids(g, 0, 0) for g in groups]
            tickets = await self._tickets.many([h[0] for h in heads if h])
            if not tickets:
                return None
            best = min(tickets, key=lambda t: t.queue_score)
            try:
                return await self.claim(best.id, agent)
            except (AlreadyClaimed, TicketStateError, TicketNotFound):
                continue  # someone else was faster: try the next head
        return None

    async def heartbeat(self, ticket_id: str, agent: Agent) -> float:
        """Keep the agent's lease alive; returns the lease length in seconds."""
        if not await self._tickets.extend_lease(ticket_id, agent.username):
            await self._tickets.change(ticket_id, transitions.still_mine(agent))
        await self.agents.touch(agent.username)
        return self.settings.lease_seconds

    async def release(self, ticket_id: str, agent: Agent) -> Ticket:
        """Give a claimed ticket back to its queue at its old position."""
        change = await self._tickets.change(ticket_id, transitions.release(agent, self._clock()))
        await self._say.waiting(
            change.after, partial(messages.requeued, change.after.context.language),
            previous_agent=agent.username)
        return change.after

    async def reply(self, ticket_id: str, agent: Agent, text: str) -> Turn:
        """Send an agent message to the shopper (renews the agent's lease)."""
        if not text.strip():
            raise InvalidInput("message must not be empty", field="text")
        ticket = await self._tickets.get(ticket_id)
        if self.screen is not None:
            await self.screen(ticket, agent, text)
        if ticket.first_response_at is None or not await self._tickets.extend_lease(
                ticket_id, agent.username):
            change = await self._tickets.change(ticket_id,
                                                transitions.answered(agent, self._clock()))
            ticket = change.after
        turn = await self.conversations.append(
            ticket.conversation_id, Role.AGENT, text,
            meta={"ticket_id": ticket.id, "agent": agent.username,
                  "agent_name": agent.display_name})
        await self._say.publish(EventType.TURN, ticket, turn=turn)
        return turn

    async def transfer(self, ticket_id: str, agent: Agent, *, group: str | None = None,
                       to_agent: str | None = None, note: str = "") -> Ticket:
        """Move a ticket to another skill group's queue, or straight to another (online) agent."""
        if (group is None) == (to_agent is None):
            raise InvalidInput("give exactly one of group or agent", field="group")
        target: Agent | None = None
        if to_agent is not None:
            target = await self.agents.get(to_agent)
            if target.presence is not Presence.ONLINE:
                raise AgentUnavailable(f"{to_agent} is not online", username=to_agent)
        else:
            self._check_group(group or "")
        move = transitions.transfer(agent, self._clock(), group=group, target=target, note=note)
        change = await self._tickets.change(ticket_id, move)
        after, lang = change.after, change.after.context.language
        if target is not None:
            await self._say.tell(after, messages.transferred_agent(lang, target.display_name),
                                 status=ChatStatus(state=ChatState.SERVING,
                                                   agent=target.display_name))
            await self._say.publish(EventType.TICKET_CLAIMED, after,
                                    previous_agent=change.before.agent)
        else:  # same place in the new group's queue (priority and first-come order kept)
            await self._say.waiting(
                after, lambda _p, _w: messages.transferred_group(lang, after.group),
                previous_agent=change.before.agent)
        await self._say.moves(change)
        return after

    async def resolve(self, ticket_id: str, agent: Agent, *, note: str = "",
                      return_to_bot: bool = True) -> Ticket:
        """Close the ticket with a note, hand the chat back to the bot and ask for a rating."""
        close = transitions.resolve(agent, self._clock(), note=note, return_to_bot=return_to_bot)
        change = await self._tickets.change(ticket_id, close)
        after = change.after
        if change.before.claimed_at is not None and after.closed_at is not None:
            seconds = (after.closed_at - change.before.claimed_at).total_seconds()
            await self._tickets.record_handling(change.before.group, max(0.0, seconds))
        if return_to_bot and self._on_return is not None:
            await self._call_on_return(after)
        await self._say.tell(after, messages.closed(after.context.language, return_to_bot),
                             buttons=messages.rating_buttons(),
                             status=ChatStatus(state=ChatState.ENDED))
        await self._say.publish(EventType.TICKET_CLOSED, after, previous_agent=change.before.agent)
        await self._say.moves(change)
        logger.info("ticket %s %s by %s", after.id, after.status, agent.username)
        return after

    async def history(self, agent: Agent, query: HistoryQuery) -> list[HistoryItem]:
        """Resolved chats the agent may look back at, matching ``query``, newest first."""
        return await self._history.search(agent, query)

    async def history_item(self, ticket_id: str, agent: Agent) -> HistoryItem:
        """One closed chat of the history (read-only), with whether it can be reopened."""
        return await self._history.item(await self.get(ticket_id, agent))

    async def reopen(self, ticket_id: str, agent: Agent) -> Ticket:
        """Take back a resolved chat whose shopper wrote again within a day.

        A new ticket (``reopened_from`` the old one) is opened for the conversation and claimed
        by ``agent`` at once; the closed ticket keeps its rating and handling time.
        """
        item = await self.history_item(ticket_id, agent)
        closed = item.ticket
        transitions.check_reopen(closed, agent)
        if not item.can_reopen:
            raise TicketStateError(
                f"ticket {closed.id} cannot be reopened: the shopper has not written again "
                "within a day, or the conversation is already open", ticket_id=closed.id,
                status=closed.status)
        group = closed.group if agent.serves(closed.group) else agent.groups[0]
        said = " ".join((item.wrote_again or "").split())
        ticket, created = await self._create(
            closed.conversation_id, reason=HandoffReason.REOPENED, channel=closed.channel,
            group=group, priority=closed.priority, display_name=closed.context.display_name,
            summary=f"{said} · {REASON_LABELS[HandoffReason.REOPENED]}", reopened_from=closed.id)
        if not created:
            raise TicketStateError(f"ticket {ticket.id} is already open for this conversation",
                                   ticket_id=ticket.id, status=ticket.status)
        change = await self._tickets.change(ticket.id, transitions.claim(agent, self._clock()))
        back = messages.reopened(change.after.context.language, agent.display_name)
        await self._say.tell(change.after, back, status=ChatStatus(
            state=ChatState.SERVING, agent=agent.display_name))
        await self._say.publish(EventType.TICKET_CLAIMED, change.after)
        logger.info("ticket %s reopened as %s by %s", closed.id, ticket.id, agent.username)
        return change.after

    async def human_turns(self, ticket: Ticket) -> list[Turn]:
        """Shopper and agent turns since the handoff: the part Rasa did not see."""
        turns = await self.conversations.transcript(ticket.conversation_id,
                                                    after=ticket.context.handoff_turn_id)
        return [t for t in turns if t.role in (Role.SHOPPER, Role.AGENT)]

    # --- queue --------------------------------------------------------------------------------

    async def list_tickets(self, status: TicketStatus | None = None, *,
                           agent: Agent | None = None, group: str | None = None,
                           limit: int = 200) -> list[Ticket]:
        """Tickets by status (``None``: every open one), queue order first.

        ``resolved`` lists tickets closed by an agent (resolved or returned to the bot), newest
        first. With ``agent``, only tickets of groups they serve or that they own.
        """
        tickets: list[Ticket] = []
        if status is None or status.is_open:
            await self.requeue_expired()
        if status in (None, TicketStatus.WAITING):
            for g in [group] if group else self._groups_of(agent):
                tickets += await self._tickets.many(
                    await self._tickets.waiting_ids(g, 0, limit - 1))
        if status in (None, TicketStatus.CLAIMED):
            tickets += await self._tickets.many(await self._tickets.claimed_ids())
        if status is not None and not status.is_open:
            wanted = {status, TicketStatus.RETURNED} if status is TicketStatus.RESOLVED \
                else {status}
            closed_ids = await self._tickets.closed_ids(self.settings.closed_index_max)
            tickets += [t for t in await self._tickets.many(closed_ids) if t.status in wanted]
        # The lists are read one after another: a ticket claimed in between is in both (once).
        unique = list({t.id: t for t in tickets}.values())  # first place, the later read
        return [t for t in unique if (group is None or t.group == group)
                and (agent is None or transitions.visible(t, agent))][:limit]

    async def queue_position(self, ticket: Ticket | str) -> int | None:
        """1-based position of a waiting ticket in its group's queue (``None`` if not waiting)."""
        if isinstance(ticket, str):
            ticket = await self._tickets.get(ticket)
        return await self._say.position(ticket)

    async def estimated_wait(self, ticket: Ticket | str) -> int | None:
        """Seconds a waiting ticket will likely wait (recent handling times, agents online)."""
        if isinstance(ticket, str):
            ticket = await self._tickets.get(ticket)
        position = await self._say.position(ticket)
        return None if position is None else (await self._say.estimator(ticket.group))(position)

    async def requeue_expired(self) -> int:
        """Put tickets whose agent vanished (lease gone) back in their queue at the old position."""
        count = 0
        for ticket_id in await self._tickets.lapsed(await self._tickets.claimed_ids()):
            try:
                change = await self._tickets.change(ticket_id,
                                                    transitions.requeue_if_lapsed(self._clock()))
            except (TicketStateError, TicketNotFound):
                continue  # renewed or handled by another process meanwhile
            count += 1
            after = change.after
            logger.info("lease of %s on ticket %s lapsed; back in queue %s",
                        change.before.agent, ticket_id, after.group)
            await self._say.waiting(after, partial(messages.requeued, after.context.language),
                                    previous_agent=change.before.agent)
        return count

    # --- helpers ------------------------------------------------------------------------------

    def _check_group(self, group: str) -> None:
        if group not in self.settings.groups:
            raise InvalidInput(f"group must be one of {self.settings.groups}", field="group")

    def _groups_of(self, agent: Agent | None) -> list[str]:
        if agent is None or agent.role is AgentRole.MANAGER:
            return list(self.settings.groups)
        return [g for g in agent.groups if g in self.settings.groups]

    async def _offline(self, group: str, now: datetime) -> bool:
        if not self.settings.in_service_hours(now):
            return True
        return await self.agents.online_count(group) == 0

    async def _escalate(self, ticket: Ticket, priority: Priority) -> Ticket:
        if priority.rank >= ticket.priority.rank or not ticket.status.is_open:
            return ticket
        change = await self._tickets.change(ticket.id,
                                            transitions.escalate(priority, self._clock()))
        if change.after.priority is not change.before.priority:
            kind = EventType.TICKET_WAITING if change.after.status is TicketStatus.WAITING \
                else EventType.TICKET_CLAIMED
            await self._say.publish(kind, change.after)
        return change.after

    async def _call_on_return(self, ticket: Ticket) -> None:
        assert self._on_return is not None
        turns = await self.human_turns(ticket)
        try:
            await self._on_return(ticket, turns)
        except Exception:  # the ticket is closed either way; the bot just lacks the human part
            logger.exception("on_return hook failed for ticket %s", ticket.id)

    list = list_tickets  # the contract's name, bound last so it shadows no annotation above


def create_handoff_service(redis_url: str, *, on_return: OnReturn | None = None) -> HandoffService:
    """A service on its own Redis client (for scripts and the CLI)."""
    redis = async_client(redis_url)
    return HandoffService(redis, ConversationStore(redis), on_return=on_return)
