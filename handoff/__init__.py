"""Human handoff: tickets with the bot's context, the queue, agents and the agent console.

The gateway asks :meth:`HandoffService.open_ticket` on every shopper message and routes messages
of handed-off conversations into the ticket; the Rasa actions call
:meth:`HandoffService.request_handoff`; ``bot.app`` mounts :func:`handoff.api.create_router`
(import it from ``handoff.api``: it pulls in FastAPI). Lapsed claims are requeued by
:func:`run_sweeper`, which runs as its own process (``python -m handoff.sweeper``).
"""

from handoff.errors import HandoffError
from handoff.models import (
    ContextPacket,
    HandoffEvent,
    HandoffReason,
    Priority,
    Ticket,
    TicketStatus,
)
from handoff.service import HandoffService, OnReturn, create_handoff_service
from handoff.settings import HandoffSettings, get_settings
from handoff.sweeper import run_sweeper

__all__ = [
    "ContextPacket",
    "HandoffError",
    "HandoffEvent",
    "HandoffReason",
    "HandoffService",
    "HandoffSettings",
    "OnReturn",
    "Priority",
    "Ticket",
    "TicketStatus",
    "create_handoff_service",
    "get_settings",
    "run_sweeper",
]
