"""Offline evaluation: run the decision for a file of labelled questions and measure it.

Questions come as JSONL, one ``{"text", "expected": entry id | null, "at"?: ISO 8601 with offset}``
per line; ``null`` means the bot must hand off. Metrics (shares are ``None`` when undefined):

- ``in_scope_top1``: in-scope lines answered with the expected entry, over in-scope lines;
- ``oos_recall``: out-of-scope lines handed off, over out-of-scope lines;
- ``answer_precision``: right answers over all answers (an answer to an out-of-scope line is wrong);
- ``accuracy``: (in-scope answered right + out-of-scope handed off) over all lines;
- ``clarify_rate``: clarified lines over all lines; ``clarify_hit``: clarified in-scope lines whose
  expected entry was among the options, over clarified in-scope lines;
- ``retrieval_top1`` / ``retrieval_top3``: in-scope lines whose expected entry ranked first / in
  the top three candidates, whatever the decision;
- ``p50_ms`` / ``p95_ms``: latency of one decision (normalise, retrieve, decide).
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ValidationError

from knowledge.errors import Problem, ValidationFailed
from knowledge.loader import parse_datetime
from knowledge.models import DecisionKind, TestQuestion
from knowledge.service import KnowledgeService


class LabelledQuestion(BaseModel):
    """One line of a questions file."""

    line: int
    question: TestQuestion


class ScoredId(BaseModel):
    """A candidate in a prediction: entry id and score."""

    entry_id: str
    score: float


class Prediction(BaseModel):
    """What the bot decided for one labelled question."""

    line: int
    text: str
    expected: str | None
    at: datetime
    kind: DecisionKind
    entry_id: str | None  # the answer, when kind is answer
    options: list[str]  # the offered entries, when kind is clarify
    correct: bool  # in scope: answered with the expected entry; out of scope: handed off
    candidates: list[ScoredId]  # top candidates with scores
    reason: str
    ms: float


class EvalReport(BaseModel):
    """Metrics of one evaluation run and every prediction behind them."""

    kb: str
    questions: str
    n: int
    n_in_scope: int
    n_oos: int
    in_scope_top1: float | None
    oos_recall: float | None
    answer_precision: float | None
    accuracy: float | None
    clarify_rate: float | None
    clarify_hit: float | None
    retrieval_top1: float | None
    retrieval_top3: float | None
    answered: int
    clarified: int
    handed_off: int
    p50_ms: float | None
    p95_ms: float | None
    thresholds: dict[str, float]
    predictions: list[Prediction]


def load_questions(
    path: str | Path, *, known_ids: Collection[str] | None = None
) -> list[LabelledQuestion]:
    """Read a JSONL questions file; every bad line is reported with its number.

    Raises:
        ValidationFailed: the file cannot be read or a line is not a valid question.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationFailed([Problem(str(path), "file", None, f"cannot read: {exc}")]) from exc
    problems: list[Problem] = []
    questions: list[LabelledQuestion] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        found = _parse_line(str(path), number, line, known_ids)
        if isinstance(found, LabelledQuestion):
            questions.append(found)
        else:
            problems.extend(found)
    if not questions and not problems:
        problems.append(Problem(str(path), "file", None, "no questions"))
    if problems:
        raise ValidationFailed(problems)
    return questions


def _parse_line(
    file: str, number: int, line: str, known_ids: Collection[str] | None
) -> LabelledQuestion | list[Problem]:
    where = f"line {number}"
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        return [Problem(file, where, None, f"invalid JSON: {exc.msg} (column {exc.colno})")]
    if not isinstance(data, dict):
        return [Problem(file, where, None, 'must be an object like {"text": ..., "expected": ...}')]
    problems: list[Problem] = []
    if "expected" not in data:
        problems.append(Problem(file, where, "expected", "missing; give an entry id, or null "
                                "when the bot must hand off"))
    if isinstance(data.get("at"), str):
        try:
            data["at"] = parse_datetime(data["at"])
        except ValueError as exc:
            problems.append(Problem(file, where, "at", str(exc)))
            data.pop("at")
    try:
        question = TestQuestion.model_validate({"expected": None, **data})
    except ValidationError as exc:
        problems += [Problem(file, where, ".".join(str(p) for p in e["loc"]) or None, e["msg"])
                     for e in exc.errors()]
        return problems
    expected = question.expected
    if known_ids is not None and expected is not None and expected not in known_ids:
        problems.append(Problem(file, where, "expected",
                                f"no entry {expected!r} in the knowledge base"))
    return problems or LabelledQuestion(line=number, question=question)


def predict(service: KnowledgeService, item: LabelledQuestion, now: datetime) -> Prediction:
    """Decide one labelled question and record the outcome."""
    q = item.question
    started = time.perf_counter()
    decision = service.decide(q.text, at=q.at or now)
    ms = (time.perf_counter() - started) * 1000.0
    entry_id = decision.entry.entry_id if decision.entry is not None else None
    if q.expected is not None:
        correct = decision.kind is DecisionKind.ANSWER and entry_id == q.expected
    else:
        correct = decision.kind is DecisionKind.HANDOFF
    return Prediction(
        line=item.line, text=q.text, expected=q.expected, at=decision.at, kind=decision.kind,
        entry_id=entry_id, options=[c.entry_id for c in decision.options], correct=correct,
        candidates=[ScoredId(entry_id=c.entry_id, score=round(c.score, 4))
                    for c in decision.candidates[:5]],
        reason=decision.reason, ms=round(ms, 3),
    )


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def summarize(
    predictions: Sequence[Prediction], *, kb: str = "", questions: str = "",
    thresholds: dict[str, float] | None = None,
) -> EvalReport:
    """The metrics of a list of predictions (see the module docstring)."""
    ins = [p for p in predictions if p.expected is not None]
    oos = [p for p in predictions if p.expected is None]
    answers = [p for p in predictions if p.kind is DecisionKind.ANSWER]
    right = [p for p in ins if p.kind is DecisionKind.ANSWER and p.entry_id == p.expected]
    handed_oos = [p for p in oos if p.kind is DecisionKind.HANDOFF]
    clarified = [p for p in predictions if p.kind is DecisionKind.CLARIFY]
    clarified_in = [p for p in clarified if p.expected is not None]
    ranks = [[c.entry_id for c in p.candidates].index(p.expected)
             if p.expected in [c.entry_id for c in p.candidates] else None for p in ins]
    ms = np.asarray([p.ms for p in predictions], dtype=np.float64)
    return EvalReport(
        kb=kb, questions=questions, n=len(predictions), n_in_scope=len(ins), n_oos=len(oos),
        in_scope_top1=_share(len(right), len(ins)),
        oos_recall=_share(len(handed_oos), len(oos)),
        answer_precision=_share(len(right), len(answers)),
        accuracy=_share(len(right) + len(handed_oos), len(predictions)),
        clarify_rate=_share(len(clarified), len(predictions)),
        clarify_hit=_share(sum(1 for p in clarified_in if p.expected in p.options),
                           len(clarified_in)),
        retrieval_top1=_share(sum(1 for r in ranks if r == 0), len(ins)),
        retrieval_top3=_share(sum(1 for r in ranks if r is not None and r < 3), len(ins)),
        answered=len(answers), clarified=len(clarified),
        handed_off=sum(1 for p in predictions if p.kind is DecisionKind.HANDOFF),
        p50_ms=round(float(np.percentile(ms, 50)), 3) if len(ms) else None,
        p95_ms=round(float(np.percentile(ms, 95)), 3) if len(ms) else None,
        thresholds=thresholds or {}, predictions=list(predictions),
    )


def evaluate(
    service: KnowledgeService, questions: Sequence[LabelledQuestion], *, now: datetime,
    kb: str = "", questions_name: str = "",
) -> EvalReport:
    """Decide every question (lines without ``at`` are asked at ``now``) and measure."""
    predictions = [predict(service, item, now) for item in questions]
    index = service.index
    thresholds = ({"answer": index.thresholds.answer, "clarify": index.thresholds.clarify,
                   "margin": index.thresholds.margin} if index is not None else {})
    return summarize(predictions, kb=kb, questions=questions_name, thresholds=thresholds)


def _fmt(value: float | None, percent: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:.1f}%" if percent else f"{value:.1f}"


def format_report(report: EvalReport) -> str:
    """A plain-text table: the lines the bot got wrong, then the metrics."""
    out: list[str] = []
    wrong = [p for p in report.predictions if not p.correct]
    if wrong:
        out.append(f"{'line':>5}  {'expected':<24} {'decision':<9} {'got':<24} {'top':>6}  text")
        for p in wrong:
            got = p.entry_id or ",".join(p.options) or "-"
            top = f"{p.candidates[0].score:.3f}" if p.candidates else "-"
            out.append(f"{p.line:>5}  {p.expected or '(handoff)':<24} {p.kind.value:<9} "
                       f"{got:<24} {top:>6}  {p.text}")
        out.append("")
    rows = [
        ("questions", f"{report.n} ({report.n_in_scope} in scope, {report.n_oos} out of scope)"),
        ("in_scope_top1", _fmt(report.in_scope_top1)),
        ("oos_recall", _fmt(report.oos_recall)),
        ("answer_precision", _fmt(report.answer_precision)),
        ("accuracy", _fmt(report.accuracy)),
        ("clarify_rate", _fmt(report.clarify_rate)),
        ("clarify_hit", _fmt(report.clarify_hit)),
        ("retrieval_top1", _fmt(report.retrieval_top1)),
        ("retrieval_top3", _fmt(report.retrieval_top3)),
        ("decisions", f"{report.answered} answer, {report.clarified} clarify, "
                      f"{report.handed_off} handoff"),
        ("p50_ms / p95_ms", f"{_fmt(report.p50_ms, False)} / {_fmt(report.p95_ms, False)}"),
        ("thresholds", ", ".join(f"{k} {v:.3f}" for k, v in report.thresholds.items()) or "-"),
    ]
    out += [f"{name:<18} {value}" for name, value in rows]
    return "\n".join(out)
