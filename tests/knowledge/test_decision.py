from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from knowledge.decision import MAX_OPTIONS, Policy, choose, decide
from knowledge.models import Candidate, Category, DecisionKind

NOW = datetime(2026, 12, 5, 12, tzinfo=timezone(timedelta(hours=8)))
POLICY = Policy(answer=0.7, clarify=0.6)


def _candidates(n: int) -> list[Candidate]:
    return [Candidate(entry_id=f"e{i}", question=f"q{i}", matched=f"q{i}", answer=f"a{i}",
                      category=Category.PRESALE, score=1.0 / (i + 2)) for i in range(n)]


@pytest.mark.parametrize(
    ("p_top", "p_in3", "live", "expected"),
    [
        (0.9, 0.95, 5, (DecisionKind.ANSWER, 1)),
        (0.7, 0.0, 1, (DecisionKind.ANSWER, 1)),  # the cut is inclusive; one live entry suffices
        (0.5, 0.8, 5, (DecisionKind.CLARIFY, MAX_OPTIONS)),
        (0.5, 0.8, 2, (DecisionKind.CLARIFY, 2)),
        (0.5, 0.8, 1, (DecisionKind.HANDOFF, 0)),  # nothing to choose between
        (0.5, 0.5, 5, (DecisionKind.HANDOFF, 0)),
        (0.99, 0.99, 0, (DecisionKind.HANDOFF, 0)),  # nothing live
    ],
)
def test_choose(p_top: float, p_in3: float, live: int,
                expected: tuple[DecisionKind, int]) -> None:
    assert choose(p_top, p_in3, live, POLICY) == expected


def test_answer_carries_the_best_candidate_and_the_probabilities() -> None:
    d = decide("退款多久", _candidates(4), 0.83, 0.9, POLICY, NOW, live=4, kb_version="v1")
    assert d.kind is DecisionKind.ANSWER and d.entry is not None and d.entry.entry_id == "e0"
    assert (d.confidence, d.in_top3, d.kb_version) == (0.83, 0.9, "v1")
    assert "0.83 ≥ 0.70" in d.reason


def test_clarify_offers_the_first_three() -> None:
    d = decide("退款", _candidates(5), 0.4, 0.75, POLICY, NOW, live=5)
    assert d.kind is DecisionKind.CLARIFY
    assert [o.entry_id for o in d.options] == ["e0", "e1", "e2"]
    assert d.entry is None and "0.75 ≥ 0.60" in d.reason


def test_handoff_says_why() -> None:
    d = decide("今天天气", _candidates(3), 0.1, 0.2, POLICY, NOW, live=3)
    assert d.kind is DecisionKind.HANDOFF and d.options == [] and d.entry is None
    assert "0.10 < 0.70" in d.reason and "0.20 < 0.60" in d.reason


def test_no_candidates_is_a_handoff() -> None:
    d = decide("x", [], 0.99, 0.99, POLICY, NOW, live=0)
    assert d.kind is DecisionKind.HANDOFF and d.reason == "no active entry"


def test_policy_bounds_are_checked() -> None:
    with pytest.raises(ValueError):
        Policy(answer=1.2, clarify=0.5)
