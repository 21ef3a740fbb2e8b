"""Errors of the handoff package (a branch of :class:`kefu.errors.KefuError`).

Every error carries structured fields and the HTTP status the console API answers with, mapped
to JSON in one place for the whole app (`kefu.http`). Who may do what is `kefu.accounts`' concern:
its errors (`NotAuthenticated`, `NotAuthorized`, …) are raised here too.

Tree::

    HandoffError                  base → 400
    ├── TicketNotFound            no such ticket, or no open ticket for a conversation → 404
    ├── PhotoNotFound             not a photo of the ticket's chat, or gone from its channel → 404
    ├── TicketStateError          the ticket is not in a state that allows this → 409
    │   ├── AlreadyClaimed        another agent holds the ticket → 409
    │   ├── LeaseExpired          the agent's claim lapsed; the ticket went back to the queue → 409
    │   └── RatingNotAllowed      nothing resolved to rate for this conversation → 409
    ├── AgentUnavailable          the target agent of a transfer is not online → 409
    └── InvalidInput              unknown group, rating outside 1–5, empty text… → 422
"""

from __future__ import annotations

from typing import ClassVar

from kefu.errors import KefuError


class HandoffError(KefuError):
    """Base of every handoff error."""

    status_code = 400
    code = "handoff_error"


class TicketNotFound(HandoffError):
    """No such ticket (or no open ticket for the conversation)."""

    status_code = 404
    code = "ticket_not_found"
    field_names = ("ticket_id", "conversation_id")

    def __init__(self, message: str, *, ticket_id: str | None = None,
                 conversation_id: str | None = None) -> None:
        super().__init__(message)
        self.ticket_id = ticket_id
        self.conversation_id = conversation_id


class PhotoNotFound(HandoffError):
    """A photo the ticket's chat does not hold, or one its channel cannot give any more.

    ``reason``: ``not_in_conversation``, or ``unavailable`` (expired, the channel failed).
    """

    status_code = 404
    code = "ticket_photo_not_found"
    field_names = ("ticket_id", "reason")

    def __init__(self, message: str, *, ticket_id: str, reason: str) -> None:
        super().__init__(message)
        self.ticket_id = ticket_id
        self.reason = reason


class TicketStateError(HandoffError):
    """The ticket's status does not allow the operation."""

    status_code = 409
    code = "ticket_state"
    field_names: ClassVar[tuple[str, ...]] = ("ticket_id", "status")

    def __init__(self, message: str, *, ticket_id: str, status: str) -> None:
        super().__init__(message)
        self.ticket_id = ticket_id
        self.status = status


class AlreadyClaimed(TicketStateError):
    """Another agent claimed the ticket first."""

    code = "already_claimed"
    field_names = ("ticket_id", "status", "agent")

    def __init__(self, message: str, *, ticket_id: str, status: str, agent: str | None) -> None:
        super().__init__(message, ticket_id=ticket_id, status=status)
        self.agent = agent


class LeaseExpired(TicketStateError):
    """The agent's lease on the ticket lapsed (console gone too long); claim it again."""

    code = "lease_expired"
    field_names = ("ticket_id", "status", "agent")

    def __init__(self, message: str, *, ticket_id: str, status: str, agent: str) -> None:
        super().__init__(message, ticket_id=ticket_id, status=status)
        self.agent = agent


class RatingNotAllowed(TicketStateError):
    """The conversation has no resolved ticket to rate."""

    code = "rating_not_allowed"


class AgentUnavailable(HandoffError):
    """The agent a ticket should go to is not online."""

    status_code = 409
    code = "agent_unavailable"
    field_names = ("username",)

    def __init__(self, message: str, *, username: str) -> None:
        super().__init__(message)
        self.username = username


class InvalidInput(HandoffError):
    """A value the handoff service cannot accept (unknown group, rating out of range…)."""

    status_code = 422
    code = "invalid_input"
    field_names = ("field",)

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field

