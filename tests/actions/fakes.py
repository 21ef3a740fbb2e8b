"""The knowledge service as the actions see it (``decide``, ``entry``), with canned decisions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from knowledge.models import Candidate, Category, Decision, DecisionKind, Entry

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def candidate(entry_id: str, question: str, answer: str, category: Category,
              score: float) -> Candidate:
    return Candidate(entry_id=entry_id, question=question, matched=question, answer=answer,
                     category=category, score=score)


SHIP = candidate("ship-time", "什么时候发货", "付款后48小时内发货。", Category.LOGISTICS, 0.91)
RETURN = candidate("return-policy", "怎么退货", "签收后7天内可无理由退货。", Category.AFTERSALE, 0.62)
REFUND = candidate("refund-time", "退款多久到账", "退款1-3个工作日原路退回。", Category.PAYMENT, 0.60)
INVOICE = candidate("invoice", "怎么开发票", "在订单页申请电子发票。", Category.AFTERSALE, 0.55)
ALL = {c.entry_id: c for c in (SHIP, RETURN, REFUND, INVOICE)}


class FakeKnowledge:
    """The knowledge service's side of the actions (``decide``, ``entry``), with canned decisions."""

    def __init__(self) -> None:
        self.decisions: dict[str, Decision] = {}
        self.requests: list[dict[str, Any]] = []
        self.fail = False

    def answer(self, text: str, entry: Candidate) -> None:
        self.decisions[text] = Decision(kind=DecisionKind.ANSWER, text=text, at=NOW,
                                        candidates=[entry, INVOICE], entry=entry)

    def clarify(self, text: str, options: list[Candidate]) -> None:
        self.decisions[text] = Decision(kind=DecisionKind.CLARIFY, text=text, at=NOW,
                                        candidates=options, options=options)

    def handoff(self, text: str, candidates: list[Candidate]) -> None:
        self.decisions[text] = Decision(kind=DecisionKind.HANDOFF, text=text, at=NOW,
                                        candidates=candidates)

    def decide(self, text: str, *, at: datetime | None = None, intent: str | None = None,
               intent_confidence: float | None = None) -> Decision:
        if self.fail:
            raise RuntimeError("index rebuilding")
        self.requests.append({"text": text, "intent": intent,
                              "intent_confidence": intent_confidence})
        return self.decisions[text]

    def now(self) -> datetime:
        return NOW

    def entry(self, entry_id: str) -> Entry | None:
        found = ALL.get(entry_id)
        if found is None:
            return None
        return Entry(id=found.entry_id, question=found.question, answer=found.answer,
                     category=found.category)
