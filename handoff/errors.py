"""Errors of the handoff package.

Every error carries structured fields and the HTTP status the console API answers with
(mapped in one place: :func:`handoff.api.error_response`).

Tree::

    HandoffError                  base → 400
    ├── NotAuthenticated          no, bad or expired session token; wrong password → 401
    ├── NotAuthorized             a known agent may not do this (group, owner, role) → 403
    ├── TicketNotFound            no such ticket, or no open ticket for a conversation → 404
    ├── AgentNotFound             no such agent → 404
    ├── TicketStateError          the ticket is not in a state that allows this → 409
    │   ├── AlreadyClaimed        another agent holds the ticket → 409
    │   ├── LeaseExpired          the agent's claim lapsed; the ticket went back to the queue → 409
    │   └── RatingNotAllowed      nothing resolved to rate for this conversation → 409
    ├── AgentExists               an agent with that username already exists → 409
    ├── AgentUnavailable          the target agent of a transfer is not online → 409
    └── InvalidInput              unknown group, rating outside 1–5, empty text… → 422
"""

from __future__ import annotations

from typing import Any


class HandoffError(Exception):
    """Base of every handoff error."""

    status_code = 400
    code = "handoff_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def fields(self) -> dict[str, Any]:
        """The structured fields of the error, for the API body."""
        return {}


class NotAuthenticated(HandoffError):
    """The caller is not a logged-in agent."""

    status_code = 401
    code = "not_authenticated"


class NotAuthorized(HandoffError):
    """A logged-in agent tried something their role, groups or ownership do not allow."""

    status_code = 403
    code = "not_authorized"

    def __init__(self, message: str, *, agent: str, action: str) -> None:
        super().__init__(message)
        self.agent = agent
        self.action = action

    def fields(self) -> dict[str, Any]:  # noqa: D102
        return {"agent": self.agent, "action": self.action}


class TicketNotFound(HandoffError):
    """No such ticket (or no open ticket for the conversation)."""

    status_code = 404
    code = "ticket_not_found"

    def __init__(self, message: str, *, ticket_id: str | None = None,
                 conversation_id: str | None = None) -> None:
        super().__init__(message)
        self.ticket_id = ticket_id
        self.conversation_id = conversation_id

    def fields(self) -> dict[str, Any]:  # noqa: D102
        return {"ticket_id": self.ticket_id, "conversation_id": self.conversation_id}


class AgentNotFound(HandoffError):
    """No agent with that username."""

    status_code = 404
    code = "agent_not_found"

    def __init__(self, message: str, *, username: str) -> None:
        super().__init__(message)
        self.username = username

    def fields(self) -> dict[str, Any]:  # noqa: D102
        return {"username": self.username}


class TicketStateError(HandoffError):
    """The ticket's status does not allow the operation."""

    status_code = 409
    code = "ticket_state"

    def __init__(self, message: str, *, ticket_id: str, status: str) -> None:
        super().__init__(message)
        self.ticket_id = ticket_id
        self.status = status

    def fields(self) -> dict[str, Any]:  # noqa: D102
        return {"ticket_id": self.ticket_id, "status": self.status}


class AlreadyClaimed(TicketStateError):
    """Another agent claimed the ticket first."""

    code = "already_claimed"

    def __init__(self, message: str, *, ticket_id: str, status: str, agent: str | None) -> None:
        super().__init__(message, ticket_id=ticket_id, status=status)
        self.agent = agent

    def fields(self) -> dict[str, Any]:  # noqa: D102
        return {**super().fields(), "agent": self.agent}


class LeaseExpired(TicketStateError):
    """The agent's lease on the ticket lapsed (console gone too long); claim it again."""

    code = "lease_expired"

    def __init__(self, message: str, *, ticket_id: str, status: str, agent: str) -> None:
        super().__init__(message, ticket_id=ticket_id, status=status)
        self.agent = agent

    def fields(self) -> dict[str, Any]:  # noqa: D102
        return {**super().fields(), "agent": self.agent}


class RatingNotAllowed(TicketStateError):
    """The conversation has no resolved ticket to rate."""

    code = "rating_not_allowed"


class AgentExists(HandoffError):
    """The username is taken."""

    status_code = 409
    code = "agent_exists"

    def __init__(self, message: str, *, username: str) -> None:
        super().__init__(message)
        self.username = username

    def fields(self) -> dict[str, Any]:  # noqa: D102
        return {"username": self.username}


class AgentUnavailable(HandoffError):
    """The agent a ticket should go to is not online."""

    status_code = 409
    code = "agent_unavailable"

    def __init__(self, message: str, *, username: str) -> None:
        super().__init__(message)
        self.username = username

    def fields(self) -> dict[str, Any]:  # noqa: D102
        return {"username": self.username}


class InvalidInput(HandoffError):
    """A value the handoff service cannot accept (unknown group, rating out of range…)."""

    status_code = 422
    code = "invalid_input"

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field

    def fields(self) -> dict[str, Any]:  # noqa: D102
        return {"field": self.field}
