"""Ticket state transitions as plain functions: the queue rules, with no Redis in sight.

Each function returns a :data:`handoff.store.Transition`: given a copy of the stored ticket and
the current lease holder it returns the new ticket or raises a ``HandoffError``. The store runs it
inside an optimistic transaction and derives queue, lease and index updates from the difference.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from handoff.errors import AlreadyClaimed, LeaseExpired, RatingNotAllowed, TicketStateError
from handoff.models import Priority, Ticket, TicketStatus, Transfer
from kefu.accounts import Agent, AgentRole
from kefu.errors import NotAuthorized

Transition = Callable[[Ticket, str | None], Ticket]


def visible(ticket: Ticket, agent: Agent) -> bool:
    """An agent sees tickets of the groups they serve and tickets they own."""
    return agent.serves(ticket.group) or ticket.agent == agent.username


def _claimed(t: Ticket, username: str, now: datetime) -> Ticket:
    return t.model_copy(update={"status": TicketStatus.CLAIMED, "agent": username,
                                "claimed_at": now, "updated_at": now})


def _waiting(t: Ticket, now: datetime) -> Ticket:
    return t.model_copy(update={"status": TicketStatus.WAITING, "agent": None, "updated_at": now})


def _closed(t: Ticket, status: TicketStatus, by: str, note: str, now: datetime) -> Ticket:
    return t.model_copy(update={"status": status, "closed_at": now, "closed_by": by,
                                "resolution_note": note or None, "updated_at": now})


def _check_open(t: Ticket) -> None:
    if not t.status.is_open:
        raise TicketStateError(f"ticket {t.id} is {t.status}", ticket_id=t.id, status=t.status)


def check_may_manage(t: Ticket, agent: Agent, action: str) -> None:
    """Owners (and managers) transfer and resolve claimed tickets; group members waiting ones."""
    _check_open(t)
    if agent.role is AgentRole.MANAGER:
        return
    if t.status is TicketStatus.CLAIMED and t.agent != agent.username:
        raise NotAuthorized(f"ticket {t.id} belongs to {t.agent}", agent=agent.username,
                            action=action)
    if t.status is TicketStatus.WAITING and not agent.serves(t.group):
        raise NotAuthorized(f"{agent.username} does not serve {t.group}", agent=agent.username,
                            action=action)


def claim(agent: Agent, now: datetime) -> Transition:
    """Take a waiting ticket; claiming one's own ticket again is a no-op."""

    def apply(t: Ticket, _holder: str | None) -> Ticket:
        if t.status is TicketStatus.CLAIMED and t.agent == agent.username:
            return t
        if t.status is TicketStatus.CLAIMED:
            raise AlreadyClaimed(f"ticket {t.id} is taken by {t.agent}", ticket_id=t.id,
                                 status=t.status, agent=t.agent)
        _check_open(t)
        if not agent.serves(t.group):
            raise NotAuthorized(f"{agent.username} does not serve {t.group}",
                                agent=agent.username, action="claim")
        return _claimed(t, agent.username, now)

    return apply


def still_mine(agent: Agent) -> Transition:
    """Unchanged while the agent owns the ticket (storing it renews the lease).

    A lapsed lease not yet swept is taken back; otherwise :class:`LeaseExpired`.
    """

    def apply(t: Ticket, holder: str | None) -> Ticket:
        if t.status is not TicketStatus.CLAIMED or t.agent != agent.username or \
                holder not in (None, agent.username):
            raise LeaseExpired(f"{agent.username} no longer holds ticket {t.id}", ticket_id=t.id,
                               status=t.status, agent=agent.username)
        return t

    return apply


def answered(agent: Agent, now: datetime) -> Transition:
    """The owner replied: the first reply stops the SLA clock."""
    mine = still_mine(agent)

    def apply(t: Ticket, holder: str | None) -> Ticket:
        t = mine(t, holder)
        return t if t.first_response_at else t.model_copy(update={"first_response_at": now})

    return apply


def release(agent: Agent, now: datetime) -> Transition:
    """The owner gives the ticket back to its queue (its old position: the score is kept)."""
    mine = still_mine(agent)
    return lambda t, holder: _waiting(mine(t, holder), now)


def requeue_if_lapsed(now: datetime) -> Transition:
    """Back to the queue when the owner's lease is gone; refused if it came back meanwhile."""

    def apply(t: Ticket, holder: str | None) -> Ticket:
        if t.status is not TicketStatus.CLAIMED or holder is not None:
            raise TicketStateError("lease still held", ticket_id=t.id, status=t.status)
        return _waiting(t, now)

    return apply


def transfer(agent: Agent, now: datetime, *, group: str | None, target: Agent | None,
             note: str) -> Transition:
    """To another group's queue (``group``) or straight to another agent (``target``)."""

    def apply(t: Ticket, _holder: str | None) -> Ticket:
        check_may_manage(t, agent, "transfer")
        to_group = group or t.group
        if target is not None and not target.serves(to_group) and target.groups:
            to_group = target.groups[0]
        record = Transfer(at=now, by=agent.username, by_name=agent.display_name,
                          from_group=t.group, to_group=to_group, from_agent=t.agent,
                          to_agent=target.username if target else None, note=note)
        t = t.model_copy(update={"group": to_group, "transfers": [*t.transfers, record]})
        return _claimed(t, target.username, now) if target else _waiting(t, now)

    return apply


def resolve(agent: Agent, now: datetime, *, note: str, return_to_bot: bool) -> Transition:
    """Close by an agent: ``returned`` when the bot takes over again, else ``resolved``."""
    status = TicketStatus.RETURNED if return_to_bot else TicketStatus.RESOLVED

    def apply(t: Ticket, _holder: str | None) -> Ticket:
        check_may_manage(t, agent, "resolve")
        return _closed(t, status, agent.username, note, now)

    return apply


def cancel(now: datetime) -> Transition:
    """The shopper leaves the queue; refused once an agent owns the ticket."""

    def apply(t: Ticket, _holder: str | None) -> Ticket:
        if t.status is not TicketStatus.WAITING:
            raise TicketStateError("an agent owns this ticket", ticket_id=t.id, status=t.status)
        return _closed(t, TicketStatus.CANCELLED, "shopper", "", now)

    return apply


def rate(score: int, now: datetime) -> Transition:
    """Store a rating on a ticket an agent resolved."""

    def apply(t: Ticket, _holder: str | None) -> Ticket:
        if t.status not in (TicketStatus.RESOLVED, TicketStatus.RETURNED):
            raise RatingNotAllowed("only resolved tickets are rated", ticket_id=t.id,
                                   status=t.status)
        return t.model_copy(update={"rating": score, "rated_at": now})

    return apply


def escalate(priority: Priority, now: datetime) -> Transition:
    """Raise the priority of an open ticket (never lower it)."""

    def apply(t: Ticket, _holder: str | None) -> Ticket:
        if priority.rank >= t.priority.rank or not t.status.is_open:
            return t
        return t.model_copy(update={"priority": priority, "updated_at": now})

    return apply


def set_slot(name: str, value: str, now: datetime) -> Transition:
    """Add a fact the shopper gave while the ticket is open (an order number) to its context."""

    def apply(t: Ticket, _holder: str | None) -> Ticket:
        _check_open(t)
        context = t.context.model_copy(update={"slots": {**t.context.slots, name: value}})
        return t.model_copy(update={"context": context, "updated_at": now})

    return apply



def check_reopen(closed: Ticket, agent: Agent) -> None:
    """Only a chat an agent closed may be reopened, by someone who could have served it."""
    if closed.status not in (TicketStatus.RESOLVED, TicketStatus.RETURNED):
        raise TicketStateError(f"ticket {closed.id} is {closed.status}", ticket_id=closed.id,
                               status=closed.status)
    if not visible(closed, agent):
        raise NotAuthorized(f"{agent.username} does not serve {closed.group}",
                            agent=agent.username, action="reopen")
