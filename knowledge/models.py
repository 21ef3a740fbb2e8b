"""Shapes of the knowledge package: entries, knowledge bases, candidates and decisions.

These are the contracts between loading, retrieval, the decision policy, the service, the HTTP API
(`/api/v1/knowledge/*`) and the Rasa actions. Change them deliberately.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Category(StrEnum):
    """Which kind of question an entry answers; also routes handoffs to a skill group."""

    PRESALE = "presale"  # before buying: promos, deposits, coupons, gifts
    AFTERSALE = "aftersale"  # returns, exchanges, warranty, invoices, care
    LOGISTICS = "logistics"  # shipping, delivery, tracking
    PAYMENT = "payment"  # payment methods, instalments, refunds to card
    ACCOUNT = "account"  # membership, points, login
    PRODUCT = "product"  # sizes, materials, stock, specs


class Entry(BaseModel):
    """One answer of the knowledge base with the questions it answers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    question: str = Field(min_length=1)
    variants: tuple[str, ...] = ()
    answer: str = Field(min_length=1)
    category: Category
    campaign: str | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    def active_at(self, at: datetime) -> bool:
        """True when the entry may answer at ``at`` (inclusive window bounds)."""
        if self.valid_from is not None and at < self.valid_from:
            return False
        return not (self.valid_until is not None and at > self.valid_until)

    @property
    def texts(self) -> tuple[str, ...]:
        """The canonical question followed by its variants."""
        return (self.question, *self.variants)


class TestQuestion(BaseModel):
    """A question with the entry that should answer it (``None``: the bot must not answer)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    __test__ = False  # not a pytest class

    text: str = Field(min_length=1)
    expected: str | None
    at: datetime | None = None


class KnowledgeBase(BaseModel):
    """A whole knowledge base as loaded from a file or a published version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entries: tuple[Entry, ...]
    tests: tuple[TestQuestion, ...] = ()

    def entry(self, entry_id: str) -> Entry | None:
        """The entry with that id, if any."""
        return next((e for e in self.entries if e.id == entry_id), None)


class Candidate(BaseModel):
    """An entry retrieval considered for a question: combined score and the signals behind it."""

    entry_id: str
    question: str  # the entry's canonical question
    matched: str  # the question or variant that matched best
    answer: str
    category: Category
    campaign: str | None = None
    score: float  # the ranker's probability for this entry among the live ones, in [0, 1]
    signals: dict[str, float] = Field(default_factory=dict)  # e.g. dense, second, lexical, head


class DecisionKind(StrEnum):
    """What the bot does with a question."""

    ANSWER = "answer"  # one entry is good enough: answer with it
    CLARIFY = "clarify"  # a few close candidates: offer them as buttons
    HANDOFF = "handoff"  # nothing good enough: a person takes over


class Decision(BaseModel):
    """The knowledge decision for one question at one time."""

    kind: DecisionKind
    text: str  # the question as asked
    at: datetime  # the "as of" time the decision was taken for
    candidates: list[Candidate]  # ranked, best first (top few)
    entry: Candidate | None = None  # the answer, when kind is answer
    options: list[Candidate] = Field(default_factory=list)  # up to 3, when kind is clarify
    reason: str = ""  # short human-readable why (the probabilities against their cuts)
    kb_version: str | None = None  # the published version that answered
    confidence: float | None = None  # p(the best candidate is the right answer)
    in_top3: float | None = None  # p(the right answer is among the first three)


class DecideRequest(BaseModel):
    """Body of ``POST /api/v1/knowledge/decide`` (sent by the Rasa actions)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=2000)
    at: datetime | None = None
    intent: str | None = None
    intent_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
