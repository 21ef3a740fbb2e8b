from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from knowledge.curation.evaluation import (
    Prediction,
    ScoredId,
    evaluate,
    format_report,
    load_questions,
    summarize,
)
from knowledge.decision import Thresholds
from knowledge.errors import ValidationFailed
from knowledge.models import Category, DecisionKind, Entry, KnowledgeBase
from knowledge.retrieval import Scorer
from knowledge.service import KnowledgeService, build_index
from knowledge.settings import KnowledgeSettings
from tests.knowledge.fakes import HashingEncoder

CST = timezone(timedelta(hours=8))
NOW = datetime(2025, 6, 1, 12, tzinfo=CST)

TINY = KnowledgeBase(entries=(
    Entry(id="refund-fee", question="退货运费谁出", variants=("退货要运费吗",), answer="买家承担",
          category=Category.AFTERSALE),
    Entry(id="refund-time", question="退货多久到账", variants=("退款几天到账",), answer="3天",
          category=Category.AFTERSALE),
    Entry(id="invoice", question="可以开发票吗", variants=("怎么开发票",), answer="可以",
          category=Category.AFTERSALE),
))

# Each line with the outcome the fixed policy below gives it (score = sigmoid(10·dense − 5),
# answer ≥ 0.9 with a lead ≥ 0.1, clarify ≥ 0.5):
LINES = [
    {"text": "退货运费谁出", "expected": "refund-fee"},  # answer, right
    {"text": "退款几天到账呀", "expected": "refund-time"},  # answer, right
    {"text": "开发票", "expected": "invoice", "at": "2025-11-11T10:00:00+08:00"},  # answer, right
    {"text": "退货要多久", "expected": "refund-fee"},  # clarify: refund-time, refund-fee (a hit)
    {"text": "今天天气怎么样", "expected": None},  # handoff, right
    {"text": "可以开发票吗", "expected": None},  # answer invoice: wrong (should hand off)
    {"text": "退货多久到账", "expected": "refund-fee"},  # answer refund-time: wrong
    {"text": "运费", "expected": None},  # handoff, right (one candidate ≥ 0.5: nothing to offer)
]


@pytest.fixture(scope="module")
def service() -> KnowledgeService:
    index = build_index(TINY, HashingEncoder())
    scorer = Scorer(weights={"dense": 10.0}, bias=-5.0, fitted_on="test")
    fixed = Thresholds(answer=0.9, clarify=0.5, margin=0.1, scorer=scorer)
    index = dataclasses.replace(index, retriever=index.retriever.with_scorer(scorer),
                                thresholds=fixed)
    return KnowledgeService(index, settings=KnowledgeSettings())


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)
                              for r in rows) + "\n", encoding="utf-8")
    return path


def test_metrics_on_a_tiny_kb_match_the_hand_computed_ones(
    service: KnowledgeService, tmp_path: Path
) -> None:
    questions = load_questions(write_jsonl(tmp_path / "q.jsonl", [*LINES[:4], "", *LINES[4:]]),
                               known_ids={e.id for e in TINY.entries})
    report = evaluate(service, questions, now=NOW)
    kinds = [(p.line, p.kind.value, p.entry_id, p.options, p.correct) for p in report.predictions]
    assert kinds == [
        (1, "answer", "refund-fee", [], True),
        (2, "answer", "refund-time", [], True),
        (3, "answer", "invoice", [], True),
        (4, "clarify", None, ["refund-time", "refund-fee"], False),
        (6, "handoff", None, [], True),  # line 5 of the file is blank
        (7, "answer", "invoice", [], False),
        (8, "answer", "refund-time", [], False),
        (9, "handoff", None, [], True),
    ]
    assert (report.n, report.n_in_scope, report.n_oos) == (8, 5, 3)
    assert report.in_scope_top1 == 0.6  # 3 right answers / 5 in scope
    assert report.oos_recall == 0.6667  # 2 handoffs / 3 out of scope
    assert report.answer_precision == 0.6  # 3 right / 5 answers
    assert report.accuracy == 0.625  # (3 + 2) / 8
    assert report.clarify_rate == 0.125  # 1 / 8
    assert report.clarify_hit == 1.0  # the one clarified in-scope line offered its entry
    assert report.retrieval_top1 == 0.6  # lines 4 and 8 rank the expected entry second
    assert report.retrieval_top3 == 1.0
    assert (report.answered, report.clarified, report.handed_off) == (5, 1, 2)
    assert report.p50_ms is not None and report.p95_ms is not None
    assert 0 < report.p50_ms <= report.p95_ms
    assert report.thresholds == {"answer": 0.9, "clarify": 0.5, "margin": 0.1}
    assert report.predictions[2].at == datetime(2025, 11, 11, 10, tzinfo=CST)
    assert report.predictions[0].at == NOW
    table = format_report(report)
    assert "in_scope_top1      60.0%" in table and "退货多久到账" in table
    assert "退货运费谁出" not in table  # only the lines that went wrong are listed


def test_percentiles_and_undefined_shares() -> None:
    def pred(ms: float) -> Prediction:
        return Prediction(line=1, text="x", expected=None, at=NOW, kind=DecisionKind.HANDOFF,
                          entry_id=None, options=[], correct=True,
                          candidates=[ScoredId(entry_id="a", score=0.1)], reason="", ms=ms)

    report = summarize([pred(m) for m in (1.0, 2.0, 3.0, 4.0, 100.0)])
    assert (report.p50_ms, report.p95_ms) == (3.0, 80.8)
    assert report.in_scope_top1 is None and report.answer_precision is None
    assert report.clarify_hit is None and report.oos_recall == 1.0
    assert "n/a" in format_report(report)


def test_bad_lines_are_reported_with_their_numbers(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "q.jsonl", [
        {"text": "ok", "expected": None},
        "{not json",
        ["a list"],
        {"text": "x"},
        {"text": "", "expected": None},
        {"text": "x", "expected": "nope"},
        {"text": "x", "expected": None, "at": "2025-11-11T10:00:00"},
        {"text": "x", "expected": None, "why": 1},
    ])
    with pytest.raises(ValidationFailed) as info:
        load_questions(path, known_ids={"refund-fee"})
    found = [(p.location, p.field) for p in info.value.problems]
    assert found == [("line 2", None), ("line 3", None), ("line 4", "expected"),
                     ("line 5", "text"), ("line 6", "expected"), ("line 7", "at"),
                     ("line 8", "why")]
    assert "invalid JSON" in info.value.problems[0].message
    assert all(p.file == str(path) for p in info.value.problems)


def test_empty_or_missing_questions_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match="no questions"):
        load_questions(write_jsonl(tmp_path / "q.jsonl", [""]))
    with pytest.raises(ValidationFailed, match="cannot read"):
        load_questions(tmp_path / "missing.jsonl")
