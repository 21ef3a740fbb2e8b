from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from knowledge.decision import Confidence, Thresholds, choose, decide
from knowledge.models import Candidate, Category, DecisionKind

AT = datetime(2026, 10, 1, 12, tzinfo=timezone(timedelta(hours=8)))
T = Thresholds(answer=0.8, clarify=0.5, margin=0.1)  # hand-set: answer on a lead ≥ margin
# Calibrated-style: confidence grows with the lead in logits; options within 0.15 of the best.
CONF = Confidence(level=0.0, lead=1.0, bias=-1.0)
TC = Thresholds(answer=0.6, clarify=0.5, margin=0.15, confidence=CONF, min_confidence=0.7)


def cand(entry_id: str, score: float) -> Candidate:
    return Candidate(entry_id=entry_id, question=f"{entry_id}?", matched=f"{entry_id}?",
                     answer=f"{entry_id}!", category=Category.PRESALE, score=score,
                     signals={"dense": score})


# ---- decide: hand-set thresholds ---------------------------------------------------------------


def test_answer_when_confident_and_clearly_ahead() -> None:
    d = decide("运费多少", [cand("b", 0.3), cand("a", 0.95)], T, AT, kb_version="v1")
    assert d.kind is DecisionKind.ANSWER
    assert d.entry is not None and d.entry.entry_id == "a"
    assert [c.entry_id for c in d.candidates] == ["a", "b"]  # ranked
    assert d.options == [] and d.kb_version == "v1" and d.at == AT and d.text == "运费多少"
    assert "0.950" in d.reason


def test_clarify_when_two_candidates_are_too_close() -> None:
    d = decide("q", [cand("a", 0.9), cand("b", 0.85), cand("c", 0.2)], T, AT)
    assert d.kind is DecisionKind.CLARIFY
    assert [o.entry_id for o in d.options] == ["a", "b"]
    assert d.entry is None
    assert "lead < 0.100" in d.reason


def test_hand_set_clarify_offers_every_top_candidate_above_clarify() -> None:
    scores = [0.7, 0.65, 0.6, 0.55, 0.1]
    d = decide("q", [cand(f"e{i}", s) for i, s in enumerate(scores)], T, AT)
    assert d.kind is DecisionKind.CLARIFY
    assert [o.entry_id for o in d.options] == ["e0", "e1", "e2"]


def test_a_lone_doubtful_candidate_is_handed_off_not_offered() -> None:
    d = decide("q", [cand("a", 0.6), cand("b", 0.1)], T, AT)
    assert d.kind is DecisionKind.HANDOFF and d.options == []
    assert "no runner-up close enough" in d.reason
    assert decide("q", [cand("a", 0.6)], T, AT).kind is DecisionKind.HANDOFF


def test_handoff_when_nothing_is_good_enough() -> None:
    d = decide("今天天气怎么样", [cand("a", 0.4), cand("b", 0.3)], T, AT)
    assert d.kind is DecisionKind.HANDOFF
    assert d.entry is None and d.options == []
    assert len(d.candidates) == 2
    assert "< clarify 0.500" in d.reason


def test_handoff_without_candidates() -> None:
    d = decide("q", [], T, AT)
    assert d.kind is DecisionKind.HANDOFF
    assert d.reason == "no active entry matched"


def test_a_lone_confident_candidate_is_answered() -> None:
    assert decide("q", [cand("a", 0.85)], T, AT).kind is DecisionKind.ANSWER


# ---- decide: calibrated thresholds (confidence model) ------------------------------------------


def test_confidence_is_a_logistic_of_level_and_lead_in_logits() -> None:
    c = Confidence(level=0.5, lead=2.0, bias=-1.0)
    def logit(s: float) -> float:
        return float(np.log(s / (1 - s)))

    z = -1.0 + 0.5 * logit(0.9) + 2.0 * (logit(0.9) - logit(0.6))
    assert c.p(0.9, 0.6) == pytest.approx(1 / (1 + np.exp(-z)))
    s1, s2 = np.array([0.9, 0.99, 0.5, 1.0]), np.array([0.6, 0.0, 0.5, 1.0])
    assert c.p_array(s1, s2) == pytest.approx([c.p(a, b) for a, b in zip(s1, s2, strict=True)])
    assert c.p(0.99, 0.0) > c.p(0.99, 0.9)  # a lone candidate is surer than a contested one


def test_calibrated_answer_needs_the_floor_and_the_confidence() -> None:
    # lead 0.9 vs 0.3 in logits: 2.2 + 0.85 → p ≈ 0.89 ≥ 0.7: answered although 0.3 < margin away
    d = decide("q", [cand("a", 0.9), cand("b", 0.3)], TC, AT)
    assert d.kind is DecisionKind.ANSWER and "confidence 0.89 ≥ 0.70" in d.reason
    # far ahead of nothing but under the answer floor: no answer, nothing to offer → a person
    low = decide("q", [cand("a", 0.55), cand("b", 0.01)], TC, AT)
    assert low.kind is DecisionKind.HANDOFF and "< answer 0.600" in low.reason


def test_calibrated_clarify_only_between_close_candidates() -> None:
    d = decide("q", [cand("a", 0.9), cand("b", 0.8), cand("c", 0.76), cand("d", 0.74)], TC, AT)
    assert d.kind is DecisionKind.CLARIFY
    assert [o.entry_id for o in d.options] == ["a", "b", "c"]  # within 0.15 of 0.9, at most 3
    assert "within 0.150 of the best" in d.reason
    # the runner-up is above clarify but not close, the best not confident enough: a person
    far = decide("q", [cand("a", 0.9), cand("b", 0.72)], TC, AT)
    assert TC.confidence is not None and TC.confidence.p(0.9, 0.72) < TC.min_confidence
    assert far.kind is DecisionKind.HANDOFF
    # close but the runner-up under clarify: not an option
    assert choose([0.58, 0.45], TC) == (DecisionKind.HANDOFF, 0)


def test_choose_counts_options() -> None:
    assert choose([], T) == (DecisionKind.HANDOFF, 0)
    assert choose([0.9, 0.1], T) == (DecisionKind.ANSWER, 1)
    assert choose([0.7, 0.6, 0.55, 0.52], T) == (DecisionKind.CLARIFY, 3)
    assert choose([0.6, 0.4], T) == (DecisionKind.HANDOFF, 0)
    assert choose([0.4], T) == (DecisionKind.HANDOFF, 0)
    assert choose([0.9, 0.8, 0.6], TC) == (DecisionKind.CLARIFY, 2)
