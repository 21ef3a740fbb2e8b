"""Checks a knowledge base must pass review before it is published (pure; no Redis, no HTTP).

- `close_pairs`: questions of two different entries so alike that retrieval will confuse them.
- `run_gate`: the version's test questions against the live version's, per question at its own time.
- `calendar`: which entries go live and expire when.

Closeness is judged by the ranker the bot answers with rather than a raw cosine: each question or
variant of an entry is asked as a query, and every *other* entry holding at least `CLOSE_SHARE`
of the ranker's probability for it is reported (even the first entry's own wording leaves room
for the other; a shopper's paraphrase will leave more). Pairs that can never be active at the
same time, and a campaign entry against its evergreen twin (it hides it while live), are not
reported.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from knowledge.models import Decision, DecisionKind, Entry, KnowledgeBase, TestQuestion
from knowledge.service import KnowledgeIndex, KnowledgeService
from knowledge.text import for_matching

# --- closeness --------------------------------------------------------------------------------

CLOSE_SHARE = 0.2  # another entry's share of the ranker's probability for an entry's own wording


class Severity(StrEnum):
    """How bad a close pair is."""

    CONFUSED = "confused"  # the other entry ranks first even for the first entry's exact wording
    CLOSE = "close"  # the other entry holds at least CLOSE_SHARE of the probability


class ClosePair(BaseModel):
    """Two entries whose questions retrieval will confuse."""

    entry_id: str
    text: str  # the question or variant of ``entry_id`` asked as a query
    other_id: str
    other_text: str  # the question or variant of ``other_id`` that matched it best
    score: float  # ``other_id``'s share of the ranker's probability for ``text``
    own_score: float  # ``entry_id``'s own share
    similarity: float  # primary-encoder cosine of the two texts
    threshold: float  # the share at or above which a pair is reported
    severity: Severity
    changed: bool = False  # one of the two entries is added or changed by the draft under review


def close_pairs(
    index: KnowledgeIndex, *, touched: Collection[str] = (), limit: int | None = None,
) -> list[ClosePair]:
    """Cross-entry question/variant pairs of ``index`` that retrieval will confuse.

    One pair per two entries (the worst wording). See the module docstring for the rule. Pairs
    with an entry in ``touched`` (added or changed by the draft) come first, then the worst.
    """
    entries = index.kb.entries
    twins = {frozenset((entries[c].id, entries[e].id))
             for c, evergreen in index.retriever.twins.items() for e in evergreen}
    asked = [(entry, text) for entry in entries for text in dict.fromkeys(entry.texts)]
    s, ranked = index.rank([for_matching(t) or t for _, t in asked], [None] * len(asked))
    worst: dict[frozenset[str], ClosePair] = {}
    for i, (entry, text) in enumerate(asked):
        mine = index.retriever.index_of(entry.id)
        assert mine is not None
        own = float(ranked.probs[i, mine])
        for j in ranked.order[i, :5]:
            other = entries[int(j)]
            share = float(ranked.probs[i, j])
            if (other.id == entry.id or share < CLOSE_SHARE
                    or not _may_compete(entry, other, twins)):
                continue
            pair = ClosePair(
                entry_id=entry.id, text=text, other_id=other.id,
                other_text=index.retriever.matched(s, i, int(j)), score=round(share, 4),
                own_score=round(own, 4), similarity=round(float(s.dense[i, j]), 4),
                threshold=CLOSE_SHARE,
                severity=Severity.CONFUSED if share >= own else Severity.CLOSE,
                changed=entry.id in touched or other.id in touched,
            )
            key = frozenset((entry.id, other.id))
            if key not in worst or _rank(pair) > _rank(worst[key]):
                worst[key] = pair
    return sorted(worst.values(), key=_rank, reverse=True)[:limit]


def _rank(pair: ClosePair) -> tuple[bool, bool, float]:
    return pair.changed, pair.severity is Severity.CONFUSED, pair.score


def _may_compete(a: Entry, b: Entry, twins: Collection[frozenset[str]]) -> bool:
    """Whether ``a`` and ``b`` can both be live for one question.

    Twins never are: the campaign entry hides the evergreen one while it is live.
    """
    if frozenset((a.id, b.id)) in twins:
        return False
    start = max((t for t in (a.valid_from, b.valid_from) if t is not None), default=None)
    end = min((t for t in (a.valid_until, b.valid_until) if t is not None), default=None)
    return start is None or end is None or start <= end


# --- test-question gate -----------------------------------------------------------------------


class Outcome(BaseModel):
    """How one version handled one test question."""

    kind: DecisionKind
    entry_id: str | None  # the answer, when kind is answer
    score: float  # best candidate's score
    correct: bool


class GateQuestion(BaseModel):
    """One test question with both versions' outcomes."""

    text: str
    expected: str | None
    at: datetime
    live: Outcome | None  # None when nothing is live
    draft: Outcome


class GateReport(BaseModel):
    """The test gate of a version against the live one."""

    questions: list[GateQuestion] = Field(default_factory=list)
    live_version: str | None = None
    live_accuracy: float | None = None  # None when nothing is live or there are no questions
    draft_accuracy: float | None = None
    passed: bool = True  # False: the version answers worse than the live one

    @property
    def summary(self) -> str:
        """One line for people: both accuracies and the verdict."""
        if not self.questions:
            return "no test questions"
        live = "n/a" if self.live_accuracy is None else f"{self.live_accuracy:.1%}"
        verdict = "passed" if self.passed else "refused: answers worse than the live version"
        return (f"{len(self.questions)} test questions: new {self.draft_accuracy:.1%}, "
                f"live {live}: {verdict}")


def union_tests(live: KnowledgeBase | None, draft: KnowledgeBase) -> list[TestQuestion]:
    """Test questions of both versions; for one wording and time the draft's expectation wins."""
    merged: dict[tuple[str, datetime | None], TestQuestion] = {}
    for test in [*(live.tests if live is not None else ()), *draft.tests]:
        merged[(for_matching(test.text), test.at)] = test
    return list(merged.values())


def outcome(decision: Decision, expected: str | None) -> Outcome:
    """Whether ``decision`` is right: the expected entry answered, or no answer when none is."""
    answered = None
    if decision.kind is DecisionKind.ANSWER and decision.entry is not None:
        answered = decision.entry.entry_id
    best = decision.candidates[0].score if decision.candidates else 0.0
    return Outcome(kind=decision.kind, entry_id=answered, score=round(best, 4),
                   correct=answered == expected)


def run_gate(
    live: KnowledgeService | None, draft: KnowledgeService, tests: Sequence[TestQuestion],
    *, now: datetime,
) -> GateReport:
    """Ask every test question of both versions at its own time (``now`` when it has none).

    The draft passes unless its accuracy is lower than the live version's.
    """
    rows: list[GateQuestion] = []
    for test in tests:
        at = test.at or now
        rows.append(GateQuestion(
            text=test.text, expected=test.expected, at=at,
            live=outcome(live.decide(test.text, at=at), test.expected) if live else None,
            draft=outcome(draft.decide(test.text, at=at), test.expected),
        ))
    if not rows:
        return GateReport(live_version=live.version.id if live and live.version else None)
    draft_acc = sum(r.draft.correct for r in rows) / len(rows)
    live_acc = (sum(bool(r.live and r.live.correct) for r in rows) / len(rows)
                if live is not None else None)
    return GateReport(
        questions=rows, live_version=live.version.id if live and live.version else None,
        live_accuracy=live_acc, draft_accuracy=draft_acc,
        passed=live_acc is None or draft_acc >= live_acc,
    )


# --- calendar ---------------------------------------------------------------------------------


class WindowStatus(StrEnum):
    """Where an entry's validity window is relative to a moment."""

    UPCOMING = "upcoming"  # goes live later
    ACTIVE = "active"  # answering now
    EXPIRED = "expired"  # no longer answers


class CalendarItem(BaseModel):
    """One time-limited entry: when it goes live and when it expires."""

    entry_id: str
    question: str
    campaign: str | None
    valid_from: datetime | None
    valid_until: datetime | None
    status: WindowStatus


class CampaignWindow(BaseModel):
    """A campaign's entries and the span they cover together."""

    campaign: str  # the campaign name, or ``""`` for time-limited entries without one
    starts: datetime | None
    ends: datetime | None
    status: WindowStatus
    entries: list[CalendarItem]


def calendar(kb: KnowledgeBase, now: datetime) -> list[CampaignWindow]:
    """Campaigns and time-limited entries of ``kb`` by start time (evergreen ones left out)."""
    groups: dict[str, list[CalendarItem]] = {}
    for entry in kb.entries:
        if entry.campaign is None and entry.valid_from is None and entry.valid_until is None:
            continue
        item = CalendarItem(entry_id=entry.id, question=entry.question, campaign=entry.campaign,
                            valid_from=entry.valid_from, valid_until=entry.valid_until,
                            status=_status(entry.valid_from, entry.valid_until, now))
        groups.setdefault(entry.campaign or "", []).append(item)
    windows = []
    for name, items in groups.items():
        items.sort(key=lambda i: (_sort_time(i.valid_from), i.entry_id))
        starts = None if any(i.valid_from is None for i in items) else min(
            i.valid_from for i in items if i.valid_from is not None)
        ends = None if any(i.valid_until is None for i in items) else max(
            i.valid_until for i in items if i.valid_until is not None)
        windows.append(CampaignWindow(campaign=name, starts=starts, ends=ends,
                                      status=_status(starts, ends, now), entries=items))
    windows.sort(key=lambda w: (_sort_time(w.starts), w.campaign))
    return windows


def _status(start: datetime | None, end: datetime | None, now: datetime) -> WindowStatus:
    if start is not None and now < start:
        return WindowStatus.UPCOMING
    if end is not None and now > end:
        return WindowStatus.EXPIRED
    return WindowStatus.ACTIVE


def _sort_time(value: datetime | None) -> float:
    return value.timestamp() if value is not None else float("-inf")
