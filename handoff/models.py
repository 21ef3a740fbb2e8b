"""Shapes of the handoff package: context packet, tickets, events, console API bodies.

The :class:`ContextPacket` is the versioned contract between the bot side (what it knew when it gave
up) and the agent console; :class:`Ticket` is what Redis stores under ``ticket_key``. Change them
deliberately and bump :data:`CONTEXT_SCHEMA_VERSION` when the packet changes shape. Agents
themselves (accounts, roles, presence) are `kefu.accounts`': the knowledge admin has them too.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

from kefu.accounts import Agent, Presence
from kefu.conversation import BotAnalysis, Turn

CONTEXT_SCHEMA_VERSION = 1
QUEUE_RANK_SPAN = 1e12  # queue score = priority rank * span + arrival sequence


class HandoffReason(StrEnum):
    """Why the bot handed the conversation to a person."""

    EXPLICIT_REQUEST = "explicit_request"  # the shopper asked for a human (words, /human, button)
    LOW_CONFIDENCE = "low_confidence"  # the knowledge decision was "handoff"
    REPEATED_FAILURE = "repeated_failure"  # two clarifications or two "not helpful" in a row
    COMPLAINT = "complaint"  # anger or a complaint (投诉, 差评, 12315, refund still missing)
    OFFLINE_MESSAGE = "offline_message"  # the shopper leaves a message for when agents are back
    REOPENED = "reopened"  # an agent reopened a resolved chat the shopper wrote to again


class Priority(StrEnum):
    """How urgently a ticket should be served; higher priorities jump ahead in the queue."""

    NORMAL = "normal"  # questions the bot could not answer
    HIGH = "high"  # complaints, angry shoppers
    URGENT = "urgent"  # set by agents/managers, or by callers for escalations

    @property
    def rank(self) -> int:
        """Queue rank: lower is served first."""
        return {Priority.URGENT: 0, Priority.HIGH: 1, Priority.NORMAL: 2}[self]


class TicketStatus(StrEnum):
    """Where a ticket is in its life."""

    WAITING = "waiting"  # in its group's queue; no agent owns it (the bot is silent)
    CLAIMED = "claimed"  # an agent owns it under a lease the console keeps alive
    RESOLVED = "resolved"  # closed by an agent; the conversation is free again
    RETURNED = "returned"  # closed by an agent and handed back to the bot with the human part
    CANCELLED = "cancelled"  # the shopper went back to the bot before an agent took it

    @property
    def is_open(self) -> bool:
        """True while a human owns (or is about to own) the conversation."""
        return self in (TicketStatus.WAITING, TicketStatus.CLAIMED)


class ContextPacket(BaseModel):
    """Everything the bot knew when it handed off, so the shopper never repeats themselves."""

    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = 1  # CONTEXT_SCHEMA_VERSION
    ticket_id: str
    conversation_id: str
    channel: str
    display_name: str | None = None
    language: str | None = None
    reason: HandoffReason
    priority: Priority
    group: str  # skill group: presale | aftersale | logistics (configurable)
    summary: str  # one line for the queue
    transcript: list[Turn]  # every turn up to the handoff, with timestamps
    analyses: list[BotAnalysis]  # per bot turn: intent, confidence, candidates, decision
    slots: dict[str, str] = Field(default_factory=dict)  # captured slots (order number…)
    handoff_turn_id: str | None = None  # last transcript id at handoff; the human part follows it
    created_at: datetime

    @property
    def order_number(self) -> str | None:
        """The order number the bot captured, if any."""
        for name in ("order_number", "order_id", "order"):
            if self.slots.get(name):
                return self.slots[name]
        return None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def shopper(self) -> str:
        """How agents call the shopper: their channel name, else "网页访客 #1234"."""
        return shopper_label(self.conversation_id, self.channel, self.display_name)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def first_seen(self) -> datetime:
        """When the shopper first wrote (the first turn of the transcript)."""
        return self.transcript[0].at if self.transcript else self.created_at


CHANNEL_VISITORS = {"web": "网页访客", "telegram": "Telegram 用户", "api": "API 访客"}


def shopper_label(conversation_id: str, channel: str, display_name: str | None) -> str:
    """The shopper's name, or a stable visitor label such as "网页访客 #1234".

    The number is the same for one conversation in every process (a hash of its id), short
    enough to say on the phone; the console shows it with the channel and first-seen time.
    """
    if display_name:
        return display_name
    number = int(hashlib.sha256(conversation_id.encode("utf-8")).hexdigest()[:8], 16) % 10_000
    return f"{CHANNEL_VISITORS.get(channel, channel + ' 访客')} #{number:04d}"


class Transfer(BaseModel):
    """One move of a ticket to another group or agent."""

    at: datetime
    by: str
    from_group: str
    to_group: str
    from_agent: str | None = None
    to_agent: str | None = None
    note: str = ""
    by_name: str | None = None  # the display name of ``by``, for the receiving agent's alert


class Ticket(BaseModel):
    """A handoff ticket as stored in Redis (``kefu.keys.ticket_key``)."""

    id: str
    conversation_id: str
    channel: str
    status: TicketStatus
    group: str
    priority: Priority
    reason: HandoffReason
    seq: int  # first-come order among all tickets; keeps the queue position across requeues
    offline: bool = False  # opened when no agent was online or outside service hours
    agent: str | None = None  # owner while claimed; last owner once closed
    created_at: datetime  # the moment of handoff: the SLA timer starts here
    updated_at: datetime
    claimed_at: datetime | None = None
    first_response_at: datetime | None = None
    closed_at: datetime | None = None
    closed_by: str | None = None
    resolution_note: str | None = None
    rating: int | None = None  # 1–5 satisfaction, asked after resolve
    rated_at: datetime | None = None
    transfers: list[Transfer] = Field(default_factory=list)
    reopened_from: str | None = None  # the closed ticket this one reopened
    context: ContextPacket

    @property
    def queue_score(self) -> float:
        """Sorted-set score in its group's queue: priority first, then first-come."""
        return self.priority.rank * QUEUE_RANK_SPAN + self.seq


class EventType(StrEnum):
    """What happened, as pushed to live consoles and channels."""

    TICKET_WAITING = "ticket.waiting"  # a ticket entered a queue (new, requeued, transferred)
    TICKET_CLAIMED = "ticket.claimed"  # an agent took a ticket (or was given one)
    TICKET_CLOSED = "ticket.closed"  # resolved, returned to the bot or cancelled
    TICKET_RATED = "ticket.rated"  # the shopper rated a closed ticket
    TICKET_UPDATED = "ticket.updated"  # facts of an open ticket changed (an order number typed)
    TURN = "turn"  # a message in a handed-off conversation (shopper, agent or system)


class HandoffEvent(BaseModel):
    """One event on ``kefu.keys.handoff_events_channel``."""

    type: EventType
    ticket_id: str
    conversation_id: str
    group: str
    status: TicketStatus
    priority: Priority
    agent: str | None = None
    previous_agent: str | None = None
    turn: Turn | None = None
    at: datetime

    def visible_to(self, agent: Agent) -> bool:
        """Whether ``agent``'s console should get this event."""
        if agent.username in (self.agent, self.previous_agent):
            return True
        return agent.serves(self.group)


# --- console API bodies -----------------------------------------------------------------------


class LoginRequest(BaseModel):
    """Body of ``POST /api/v1/agent/login``."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class LoginResponse(BaseModel):
    """A console session token (send as ``Authorization: Bearer <token>``)."""

    token: str
    expires_in: int  # idle seconds before the session lapses
    agent: Agent


class ConsoleConfig(BaseModel):
    """Timings and groups the console needs."""

    groups: list[str]
    lease_seconds: float
    heartbeat_seconds: float
    sla_seconds: int
    timezone: str  # the shop's days (reports, history dates), as an IANA name


class MeResponse(BaseModel):
    """Body of ``GET /api/v1/agent/me``."""

    agent: Agent
    config: ConsoleConfig


class PresenceRequest(BaseModel):
    """Body of ``POST /api/v1/agent/presence``."""

    model_config = ConfigDict(extra="forbid")

    status: Presence


class MessageRequest(BaseModel):
    """Body of ``POST /api/v1/tickets/{id}/messages``."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=4000)


class TransferRequest(BaseModel):
    """Body of ``POST /api/v1/tickets/{id}/transfer``: exactly one of ``group`` or ``agent``."""

    model_config = ConfigDict(extra="forbid")

    group: str | None = None
    agent: str | None = None
    note: str = Field(default="", max_length=1000)

    @model_validator(mode="after")
    def _one_target(self) -> TransferRequest:
        if (self.group is None) == (self.agent is None):
            raise ValueError("give exactly one of group or agent")
        return self


class ResolveRequest(BaseModel):
    """Body of ``POST /api/v1/tickets/{id}/resolve``."""

    model_config = ConfigDict(extra="forbid")

    note: str = Field(default="", max_length=4000)
    return_to_bot: bool = True


class CannedAnswer(BaseModel):
    """A knowledge answer an agent may insert into a reply (``GET /api/v1/knowledge/canned``)."""

    entry_id: str
    question: str  # the entry's canonical question
    answer: str
    score: float  # how well the entry matches the search, in [0, 1]


class LeaseResponse(BaseModel):
    """Answer of a heartbeat: the lease is held for another ``lease_seconds``."""

    ticket_id: str
    agent: str
    lease_seconds: float


# --- what the shopper is told about the handoff -----------------------------------------------


class ChatState(StrEnum):
    """Where the shopper's chat stands, as the web widget's status banner says it."""

    WAITING = "waiting"  # in the queue: "排队中，前面还有 N 位"
    SERVING = "serving"  # an agent took it: "客服 小艾 为您服务"
    MESSAGE_LEFT = "message_left"  # nobody online; the message waits: "已留言，客服上线后回复"
    ENDED = "ended"  # back with the bot (resolved, returned or left the queue): no banner


class ChatStatus(BaseModel):
    """The chat's state after a system message; kept in that turn's ``meta["status"]``."""

    state: ChatState
    ahead: int | None = None  # shoppers ahead in the queue, while waiting
    agent: str | None = None  # the serving agent's display name


class Availability(BaseModel):
    """Whether someone of a group can take a chat now (asked before moving a shopper)."""

    group: str
    online: int  # agents of the group online now
    in_hours: bool  # inside the configured service hours

    @property
    def open(self) -> bool:
        """True when a person can take the chat now."""
        return self.in_hours and self.online > 0


# --- history ------------------------------------------------------------------------------------


class HistoryItem(BaseModel):
    """A resolved conversation in the console's history (read-only)."""

    ticket: Ticket
    wrote_again_at: datetime | None = None  # the shopper's first message after the close
    wrote_again: str | None = None  # what that message said
    can_reopen: bool = False  # they wrote again within a day and nothing else is open
