"""The answer-level policy: answer, clarify or hand off, thresholds calibrated per knowledge base.

`decide` looks at the ranked candidates of one question (scores ``s1 ≥ s2 ≥ s3``):

- **answer** when the best score reaches ``answer`` and the top candidate is confidently right:
  the calibrated `Confidence` (the probability that the best candidate is the right one, from
  ``s1`` and its lead over ``s2``) reaches ``min_confidence``;
- **clarify** otherwise, when at least two of the top three candidates are *close*: each scores at
  least ``clarify`` and lies less than ``margin`` below the best; the close ones are the options;
- **handoff** otherwise (nothing active, nothing good enough, or one doubtful candidate alone).

Thresholds without a confidence model (hand-set ones, `DEFAULT_THRESHOLDS`) answer when the best
leads the runner-up by at least ``margin`` and offer every top candidate scoring at least
``clarify`` (two at least) when they do not.

The thresholds of a knowledge base, `Confidence` included, are set from its own data when it is
published (`knowledge.calibration`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import datetime

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from knowledge.models import Candidate, Decision, DecisionKind
from knowledge.retrieval import DEFAULT_SCORER, Scorer

logger = logging.getLogger(__name__)

MAX_OPTIONS = 3
TARGET_WRONG_RATE = 0.05  # default share of in-scope (and OOS) calibration queries answered wrong
TARGET_OOS_HANDOFF = 0.9  # default share of OOS calibration queries scoring below ``clarify``
MIN_CONFIDENCE = 0.5  # never answer when the best candidate is more likely wrong than right
_LOGIT_CLIP = 1e-6


class Confidence(BaseModel):
    """The probability that the best candidate is the right answer, from ``s1`` and ``s2``.

    ``p = sigmoid(bias + level·logit(s1) + lead·(logit(s1) − logit(s2)))``; scores are clipped
    to [1e-6, 1 − 1e-6] first (a lone candidate has ``s2 = 0``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: float
    lead: float
    bias: float
    fitted_on: str = ""

    def p(self, s1: float, s2: float) -> float:
        """The confidence for one best and runner-up score."""
        l1, l2 = _logit(s1), _logit(s2)
        z = self.bias + self.level * l1 + self.lead * (l1 - l2)
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def p_array(self, s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
        """`p` for arrays of best and runner-up scores."""
        l1, l2 = logit_array(s1), logit_array(s2)
        z = self.bias + self.level * l1 + self.lead * (l1 - l2)
        out: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0)))
        return out


def _logit(s: float) -> float:
    s = min(1.0 - _LOGIT_CLIP, max(_LOGIT_CLIP, s))
    return math.log(s / (1.0 - s))


def logit_array(s: np.ndarray) -> np.ndarray:
    """``log(s / (1 - s))`` elementwise, scores clipped like `Confidence` clips them."""
    s = np.clip(s, _LOGIT_CLIP, 1.0 - _LOGIT_CLIP)
    out: np.ndarray = np.log(s / (1.0 - s))
    return out


class Thresholds(BaseModel):
    """The calibrated policy of one knowledge base: how to score and where to cut."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    answer: float = Field(ge=0.0, le=1.0)  # best score needed to answer
    clarify: float = Field(ge=0.0, le=1.0)  # score every offered option needs
    margin: float = Field(ge=0.0, le=1.0)  # options lie less than this below the best
    confidence: Confidence | None = None  # None: answer on a lead of at least ``margin``
    min_confidence: float = Field(default=MIN_CONFIDENCE, ge=0.0, le=1.0)
    scorer: Scorer = DEFAULT_SCORER  # the signal combination the thresholds apply to
    method: str = "default"  # how they were calibrated, in words
    in_scope_queries: int = 0  # in-scope calibration queries used (held-out texts + tests)
    test_queries: int = 0  # of which the knowledge base's own test questions (in and out of scope)
    oos_queries: int = 0  # out-of-scope queries used
    expected: dict[str, float] = Field(default_factory=dict)  # rates on the calibration queries
    target_wrong_rate: float = TARGET_WRONG_RATE
    target_oos_handoff: float = TARGET_OOS_HANDOFF

    def confident(self, best: float, runner: float) -> bool:
        """Whether the best candidate is sure enough to be answered (its score aside)."""
        if self.confidence is None:
            return best - runner >= self.margin
        return self.confidence.p(best, runner) >= self.min_confidence

    @property
    def near(self) -> float:
        """How far below the best an option may lie (hand-set thresholds: any distance)."""
        return self.margin if self.confidence is not None else math.inf


#: Used only before a knowledge base is calibrated (dense-only default scorer).
DEFAULT_THRESHOLDS = Thresholds(answer=0.8, clarify=0.5, margin=0.1)


# ---- decide ------------------------------------------------------------------------------------


def decide(
    text: str,
    candidates: Sequence[Candidate],
    thresholds: Thresholds,
    at: datetime,
    kb_version: str | None = None,
) -> Decision:
    """Answer, clarify or hand off for one question, given its ranked candidates (best first)."""
    ranked = sorted(candidates, key=lambda c: c.score, reverse=True)
    kind, count = choose([c.score for c in ranked], thresholds)
    common = {"text": text, "at": at, "candidates": list(ranked), "kb_version": kb_version}
    if not ranked:
        return Decision(kind=kind, reason="no active entry matched", **common)
    t = thresholds
    best = ranked[0].score
    runner = ranked[1].score if len(ranked) > 1 else 0.0
    lead = f"best {best:.3f}, runner-up {runner:.3f}"
    if t.confidence is not None:
        p = t.confidence.p(best, runner)
        sure = f"confidence {p:.2f} {'≥' if p >= t.min_confidence else '<'} {t.min_confidence:.2f}"
    else:
        sure = f"lead {'≥' if best - runner >= t.margin else '<'} {t.margin:.3f}"
    if kind is DecisionKind.ANSWER:
        reason = f"{lead}: ≥ answer {t.answer:.3f}, {sure}"
        return Decision(kind=kind, entry=ranked[0], reason=reason, **common)
    if kind is DecisionKind.CLARIFY:
        why = sure if best >= t.answer else f"< answer {t.answer:.3f}"
        within = f" within {t.near:.3f} of the best" if t.confidence is not None else ""
        reason = f"{lead}: {count} candidates ≥ clarify {t.clarify:.3f}{within}; {why}"
        return Decision(kind=kind, options=list(ranked[:count]), reason=reason, **common)
    if best < t.clarify:
        reason = f"{lead}: < clarify {t.clarify:.3f}"
    else:
        why = sure if best >= t.answer else f"< answer {t.answer:.3f}"
        reason = f"{lead}: no runner-up close enough to offer; {why}"
    return Decision(kind=kind, reason=reason, **common)


def choose(scores: Sequence[float], thresholds: Thresholds) -> tuple[DecisionKind, int]:
    """The decision for scores sorted best first, and how many top candidates it shows (options)."""
    if not scores:
        return DecisionKind.HANDOFF, 0
    t = thresholds
    best = scores[0]
    runner = scores[1] if len(scores) > 1 else 0.0
    if best >= t.answer and t.confident(best, runner):
        return DecisionKind.ANSWER, 1
    if best >= t.clarify:
        close = 1 + sum(1 for s in scores[1:MAX_OPTIONS] if s >= t.clarify and best - s < t.near)
        if close >= 2:
            return DecisionKind.CLARIFY, close
    return DecisionKind.HANDOFF, 0
