from __future__ import annotations

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
from knowledge.errors import ValidationFailed
from knowledge.models import Category, DecisionKind, Entry, KnowledgeBase
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

def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)
                              for r in rows) + "\n", encoding="utf-8")
    return path


def pred(line: int, expected: str | None, kind: DecisionKind, entry: str | None = None,
         options: tuple[str, ...] = (), ranked: tuple[str, ...] = (),
         question_kind: str | None = None) -> Prediction:
    correct = (kind is DecisionKind.ANSWER and entry == expected) if expected is not None \
        else kind is DecisionKind.HANDOFF
    return Prediction(line=line, text=f"q{line}", expected=expected, at=NOW, kind=kind,
                      entry_id=entry, options=list(options), correct=correct,
                      candidates=[ScoredId(entry_id=c, score=0.5) for c in ranked],
                      reason="", ms=float(line), confidence=0.5, question_kind=question_kind)


A, C, H = DecisionKind.ANSWER, DecisionKind.CLARIFY, DecisionKind.HANDOFF
PREDICTIONS = [
    pred(1, "fee", A, "fee", ranked=("fee", "time"), question_kind="zh"),
    pred(2, "time", A, "time", ranked=("time",), question_kind="zh"),
    pred(3, "inv", A, "inv", ranked=("inv",), question_kind="en"),
    pred(4, "fee", C, options=("time", "fee"), ranked=("time", "fee"), question_kind="zh"),
    pred(6, None, H, question_kind="oos"),
    pred(7, None, A, "inv", question_kind="oos"),
    pred(8, "fee", A, "time", ranked=("time", "fee"), question_kind="en"),
    pred(9, None, H, question_kind="oos"),
]


def test_metrics_match_the_hand_computed_ones() -> None:
    report = summarize(PREDICTIONS, policy={"answer": 0.7, "clarify": 0.6})
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
    assert report.policy == {"answer": 0.7, "clarify": 0.6}


def test_lines_with_a_kind_are_reported_per_kind() -> None:
    report = summarize(PREDICTIONS)
    assert list(report.by_kind) == ["en", "oos", "zh"]
    zh, en, oos = report.by_kind["zh"], report.by_kind["en"], report.by_kind["oos"]
    assert (zh.n, zh.in_scope_top1, zh.clarify_rate) == (3, 0.6667, 0.3333)
    assert (en.n, en.in_scope_top1, en.answer_precision) == (2, 0.5, 0.5)
    assert (oos.n, oos.oos_recall, oos.in_scope_top1) == (3, 0.6667, None)
    table = format_report(report)
    assert "kind" in table and "\nzh " in table and "\noos " in table
    assert summarize([p.model_copy(update={"question_kind": None})
                      for p in PREDICTIONS]).by_kind == {}


def test_evaluate_asks_each_line_at_its_time_and_reports_progress(tmp_path: Path) -> None:
    rows = [{"text": "退货运费谁出", "expected": "refund-fee", "kind": "zh", "source": "shop"},
            {"text": "开发票", "expected": "invoice", "at": "2025-11-11T10:00:00+08:00"},
            "",
            {"text": "今天天气怎么样", "expected": None, "kind": "oos"}]
    questions = load_questions(write_jsonl(tmp_path / "q.jsonl", rows),
                               known_ids={e.id for e in TINY.entries})
    assert questions[0].extra == {"kind": "zh", "source": "shop"} and questions[0].kind == "zh"
    service = KnowledgeService(build_index(TINY, HashingEncoder()), settings=KnowledgeSettings())
    seen: list[tuple[int, int]] = []
    report = evaluate(service, questions, now=NOW, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert [p.line for p in report.predictions] == [1, 2, 4]
    assert report.predictions[1].at == datetime(2025, 11, 11, 10, tzinfo=CST)
    assert report.predictions[0].at == NOW
    assert [p.question_kind for p in report.predictions] == ["zh", None, "oos"]
    assert set(report.by_kind) == {"zh", "oos"}
    assert all(p.confidence is not None for p in report.predictions)
    assert set(report.policy) == {"answer", "clarify"}
    assert report.p50_ms is not None and 0 < report.p50_ms <= (report.p95_ms or 0)


def test_percentiles_and_undefined_shares() -> None:
    def timed(ms: float) -> Prediction:
        return Prediction(line=1, text="x", expected=None, at=NOW, kind=DecisionKind.HANDOFF,
                          entry_id=None, options=[], correct=True,
                          candidates=[ScoredId(entry_id="a", score=0.1)], reason="", ms=ms)

    report = summarize([timed(m) for m in (1.0, 2.0, 3.0, 4.0, 100.0)])
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
        {"text": "x", "expected": None, "why": 1},  # other keys are kept, not refused
    ])
    with pytest.raises(ValidationFailed) as info:
        load_questions(path, known_ids={"refund-fee"})
    found = [(p.location, p.field) for p in info.value.problems]
    assert found == [("line 2", None), ("line 3", None), ("line 4", "expected"),
                     ("line 5", "text"), ("line 6", "expected"), ("line 7", "at")]
    assert "invalid JSON" in info.value.problems[0].message
    assert all(p.file == str(path) for p in info.value.problems)


def test_empty_or_missing_questions_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match="no questions"):
        load_questions(write_jsonl(tmp_path / "q.jsonl", [""]))
    with pytest.raises(ValidationFailed, match="cannot read"):
        load_questions(tmp_path / "missing.jsonl")
