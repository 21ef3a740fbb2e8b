"""The answer-level policy: answer, clarify or hand off one question.

`choose` reads the two probabilities the confidence model gives a question
(`knowledge.confidence`):

- **answer** with the best entry when ``p_top`` (the best entry is the right answer) reaches
  ``Policy.answer``;
- **clarify** otherwise, when ``p_in3`` (the right answer is among the first three) reaches
  ``Policy.clarify`` and at least two entries are live: the first three are offered;
- **handoff** otherwise (nothing live, or probably nothing in the knowledge base answers it).

The two cuts are global, shipped with the model and chosen on the dev sets held out family by
family (benchmarks/results/generalisation.md); settings can move them
(``KEFU_ANSWER_CONFIDENCE``, ``KEFU_CLARIFY_CONFIDENCE``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from knowledge.models import Candidate, Decision, DecisionKind

MAX_OPTIONS = 3


class Policy(BaseModel):
    """Where the decision cuts the two probabilities."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    answer: float = Field(ge=0.0, le=1.0)  # p_top needed to answer
    clarify: float = Field(ge=0.0, le=1.0)  # p_in3 needed to offer options


def choose(p_top: float, p_in3: float, live: int, policy: Policy) -> tuple[DecisionKind, int]:
    """The decision and how many candidates it shows (1 for an answer, the options to clarify)."""
    if live == 0:
        return DecisionKind.HANDOFF, 0
    if p_top >= policy.answer:
        return DecisionKind.ANSWER, 1
    if live >= 2 and p_in3 >= policy.clarify:
        return DecisionKind.CLARIFY, min(MAX_OPTIONS, live)
    return DecisionKind.HANDOFF, 0


def decide(
    text: str,
    candidates: Sequence[Candidate],
    p_top: float,
    p_in3: float,
    policy: Policy,
    at: datetime,
    *,
    live: int,
    kb_version: str | None = None,
) -> Decision:
    """Answer, clarify or hand off one question, given its ranked live candidates (best first)."""
    kind, count = choose(p_top, p_in3, min(live, len(candidates)), policy)
    common = {"text": text, "at": at, "candidates": list(candidates), "kb_version": kb_version,
              "confidence": round(p_top, 4), "in_top3": round(p_in3, 4)}
    if not candidates:
        return Decision(kind=kind, reason="no active entry", **common)
    sure = (f"p(best right) {p_top:.2f} {'≥' if p_top >= policy.answer else '<'} "
            f"{policy.answer:.2f}")
    near = f"p(right in top 3) {p_in3:.2f} {'≥' if p_in3 >= policy.clarify else '<'} " \
           f"{policy.clarify:.2f}"
    if kind is DecisionKind.ANSWER:
        return Decision(kind=kind, entry=candidates[0], reason=sure, **common)
    if kind is DecisionKind.CLARIFY:
        return Decision(kind=kind, options=list(candidates[:count]), reason=f"{sure}; {near}",
                        **common)
    return Decision(kind=kind, reason=f"{sure}; {near}", **common)
