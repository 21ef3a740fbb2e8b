"""What publishing a draft changes *beyond itself*: answers to questions it does not mention.

A campaign file is reviewed entry by entry (`knowledge.curation.diff`) and against its own test
questions (`review.run_gate`), but what hurts shoppers is what it changes elsewhere: a careless
variant that captures a restock question for the whole campaign, or thresholds recalibrated on the
merged version. So the review asks both versions, the live one and the draft, the questions that
matter and were not written for this file:

- the live version's own test questions (each at its own time when it has one);
- the questions real shoppers asked the bot in the last days (the recent-questions stream);

each at the moments the draft can differ: now, and the start and end of every campaign window the
draft adds or changes. A row is reported where the two versions decide differently (another
entry, another kind of decision, other clarification options). Pure: the services come in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from knowledge.curation.diff import KbDiff
from knowledge.curation.review import CampaignWindow
from knowledge.models import Decision, DecisionKind, TestQuestion
from knowledge.service import KnowledgeService
from knowledge.text import for_matching

ANSWER_PREVIEW_CHARS = 80


class Source(StrEnum):
    """Where a question asked of both versions comes from."""

    TEST = "test"  # a test question of the live version
    SHOPPER = "shopper"  # a shopper asked it in the last days


class Asked(BaseModel):
    """A question to ask both versions."""

    text: str
    source: Source
    at: datetime | None = None  # a test's own time; when the shopper asked it
    expected: str | None = None  # a test's expected entry (``None``: must not be answered)

    @property
    def fixed_time(self) -> bool:
        """A test written for one moment is only asked at that moment."""
        return self.source is Source.TEST and self.at is not None


class Outcome(BaseModel):
    """What one version does with one question at one time, as a manager reads it."""

    kind: DecisionKind
    entry_id: str | None = None  # the answer's entry
    question: str | None = None  # the answer entry's question
    answer: str | None = None  # its first words
    options: list[str] = Field(default_factory=list)  # entry ids, when clarifying

    @classmethod
    def of(cls, decision: Decision) -> Outcome:
        """The outcome of a decision."""
        entry = decision.entry if decision.kind is DecisionKind.ANSWER else None
        answer = None
        if entry is not None:
            flat = " ".join(entry.answer.split())
            answer = flat if len(flat) <= ANSWER_PREVIEW_CHARS else \
                flat[: ANSWER_PREVIEW_CHARS - 1] + "…"
        return cls(kind=decision.kind, entry_id=entry.entry_id if entry else None,
                   question=entry.question if entry else None, answer=answer,
                   options=[o.entry_id for o in decision.options]
                   if decision.kind is DecisionKind.CLARIFY else [])

    def same_as(self, other: Outcome) -> bool:
        """Whether a shopper would get the same thing."""
        return (self.kind, self.entry_id, sorted(self.options)) == \
            (other.kind, other.entry_id, sorted(other.options))


class ImpactRow(BaseModel):
    """One question whose answer the draft would change, at one moment."""

    text: str
    source: Source
    asked_at: datetime | None  # when the shopper asked it (or the test's time)
    at: datetime  # the moment both versions were asked about
    before: Outcome | None  # the live version (``None``: nothing is live)
    after: Outcome
    expected: str | None = None  # for a test question
    by_draft: bool = False  # the new answer is an entry the draft adds or changes
    breaks_test: bool = False  # a test question the live version got right and the draft not


class ImpactReport(BaseModel):
    """The answers a draft changes beyond its own entries and tests."""

    times: list[datetime]  # the moments asked about
    tests: int  # live test questions asked
    shopper_questions: int  # recent shopper questions asked
    since: datetime | None = None  # how far back shopper questions were read
    rows: list[ImpactRow] = Field(default_factory=list)


def impact_times(diff: KbDiff, calendar: Sequence[CampaignWindow], now: datetime) -> list[datetime]:
    """Now, and the start and end of each campaign window holding an entry the draft touches."""
    touched = {c.entry_id for c in (*diff.added, *diff.changed)}
    times = {now}
    for window in calendar:
        if any(item.entry_id in touched for item in window.entries):
            times.update(t for t in (window.starts, window.ends) if t is not None)
    return sorted(times)


def questions_to_ask(live_tests: Iterable[TestQuestion], draft_tests: Iterable[TestQuestion],
                     recent: Iterable[tuple[str, datetime]]) -> list[Asked]:
    """Live tests and recent shopper questions, without those the draft itself brings.

    A wording counts once (the test wins over a shopper's same question).
    """
    own = {for_matching(t.text) for t in draft_tests}
    asked: dict[str, Asked] = {}
    for test in live_tests:
        key = for_matching(test.text)
        if key not in own:
            asked.setdefault(key, Asked(text=test.text, source=Source.TEST, at=test.at,
                                        expected=test.expected))
    for text, at in recent:
        key = for_matching(text)
        if key and key not in own:
            asked.setdefault(key, Asked(text=text, source=Source.SHOPPER, at=at))
    return list(asked.values())


def impact(live: KnowledgeService | None, draft: KnowledgeService, questions: Sequence[Asked],
           times: Sequence[datetime], touched: Iterable[str]) -> list[ImpactRow]:
    """Every question and moment at which the draft decides differently from the live version."""
    touched = set(touched)
    rows: list[ImpactRow] = []
    for question in questions:
        moments = [question.at] if question.fixed_time and question.at else list(times)
        for at in moments:
            before = Outcome.of(live.decide(question.text, at=at)) if live else None
            after = Outcome.of(draft.decide(question.text, at=at))
            if before is not None and before.same_as(after):
                continue
            rows.append(_row(question, at, before, after, touched))
    rows.sort(key=lambda r: (not r.breaks_test, not r.by_draft, r.source != Source.TEST, r.at))
    return rows


def _row(question: Asked, at: datetime, before: Outcome | None, after: Outcome,
         touched: set[str]) -> ImpactRow:
    test = question.source is Source.TEST
    right_before = before is not None and before.entry_id == question.expected
    right_after = after.entry_id == question.expected
    return ImpactRow(
        text=question.text, source=question.source, asked_at=question.at, at=at, before=before,
        after=after, expected=question.expected if test else None,
        by_draft=bool(after.entry_id in touched or touched.intersection(after.options)),
        breaks_test=test and right_before and not right_after,
    )
