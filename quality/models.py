"""The quality package's records and wire shapes: alerts, whispers, audit entries, API bodies."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from kefu.conversation import Role
from quality.reports import QaRecord
from quality.rules import Rule, RuleAction


class Alert(BaseModel):
    """A rule matched: what, where, and who is involved."""

    id: str = ""  # stream id in qa_alerts_key, assigned when stored
    rule_id: str
    rule_name: str
    action: RuleAction
    conversation_id: str
    ticket_id: str | None = None
    group: str | None = None
    agent: str | None = None  # who owns the chat (or wrote the blocked message)
    role: Role | None = None  # whose message matched (none: a time rule)
    text: str = ""  # the message, cut to 200 characters
    matched: str = ""  # what matched, the anger score, or the seconds over the limit
    anger: float | None = None  # the shopper anger model's score of the message, when computed
    at: datetime


class Whisper(BaseModel):
    """A supervisor's note to a ticket's agent: never in the transcript, never to the shopper."""

    ticket_id: str
    conversation_id: str
    by: str
    by_name: str
    to_agent: str | None
    text: str
    at: datetime


class EventKind(StrEnum):
    """What the quality event stream carries."""

    ALERT = "qa.alert"  # for supervisors (and, for a block, the agent who wrote it)
    WHISPER = "qa.whisper"  # for the ticket's agent and supervisors


class QualityEvent(BaseModel):
    """One event on ``kefu.keys.qa_events_channel``."""

    type: EventKind
    alert: Alert | None = None
    whisper: Whisper | None = None


class AuditEntry(BaseModel):
    """One save of the rules: who, when, which version, and which rules changed."""

    version: int
    by: str
    at: datetime
    comment: str
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)


class SaveRulesRequest(BaseModel):
    """Body of ``PUT /api/v1/quality/rules``: the whole rule list, on top of ``base_version``."""

    model_config = ConfigDict(extra="forbid")

    base_version: int = Field(ge=0)
    rules: list[Rule] = Field(max_length=200)
    comment: str = Field(default="", max_length=500)


class WhisperRequest(BaseModel):
    """Body of ``POST /api/v1/quality/tickets/{id}/whisper``."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=2000)


class AngerRequest(BaseModel):
    """Body of ``POST /api/v1/quality/anger``: texts to score (for supervisors trying the model)."""

    model_config = ConfigDict(extra="forbid")

    texts: list[str] = Field(min_length=1, max_length=50)


class DrillItem(BaseModel):
    """One conversation behind a report figure (with its ticket's QA record, when a ticket's)."""

    conversation_id: str
    ticket_id: str | None = None
    record: QaRecord | None = None


class ReviewRequest(BaseModel):
    """Body of ``POST /api/v1/quality/records/{ticket_id}/review``."""

    model_config = ConfigDict(extra="forbid")

    score: int = Field(ge=1, le=5)
    comment: str = Field(default="", max_length=2000)
