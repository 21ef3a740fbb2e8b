"""Offline evaluation: run the decision for a file of labelled questions and measure it.

Questions come as JSONL, one ``{"text", "expected": entry id | null, "at"?: ISO 8601 with offset}``
per line; ``null`` means the bot must hand off. Other keys are kept with the line (``kind`` also
breaks the report down: one row per kind). Metrics (shares are ``None`` when undefined):

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
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from knowledge.errors import Problem, ValidationFailed
from knowledge.loader import parse_datetime
from knowledge.models import DecisionKind, TestQuestion
from knowledge.service import KnowledgeService

_KNOWN_KEYS = ("text", "expected", "at")


class LabelledQuestion(BaseModel):
    """One line of a questions file; keys other than text/expected/at are kept in ``extra``."""

    line: int
    question: TestQuestion
    extra: dict[str, object] = Field(default_factory=dict)

    @property
    def kind(self) -> str | None:
        """The line's ``kind`` (zh, en, oos, promo-in …), when it gives one."""
        kind = self.extra.get("kind")
        return str(kind) if kind is not None else None


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
    confidence: float | None = None  # p(the best candidate is right)
    question_kind: str | None = None  # the line's ``kind``, if it gives one


class Metrics(BaseModel):
    """The module doc's metrics over some predictions."""

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


class EvalReport(Metrics):
    """Metrics of one evaluation run, per kind, and every prediction behind them."""

    kb: str
    questions: str
    policy: dict[str, float]  # the cuts the decision used
    by_kind: dict[str, Metrics] = Field(default_factory=dict)
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
    extra = {k: v for k, v in data.items() if k not in _KNOWN_KEYS}
    known = {k: v for k, v in data.items() if k in _KNOWN_KEYS}
    try:
        question = TestQuestion.model_validate({"expected": None, **known})
    except ValidationError as exc:
        problems += [Problem(file, where, ".".join(str(p) for p in e["loc"]) or None, e["msg"])
                     for e in exc.errors()]
        return problems
    expected = question.expected
    if known_ids is not None and expected is not None and expected not in known_ids:
        problems.append(Problem(file, where, "expected",
                                f"no entry {expected!r} in the knowledge base"))
    return problems or LabelledQuestion(line=number, question=question, extra=extra)


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
        reason=decision.reason, ms=round(ms, 3), confidence=decision.confidence,
        question_kind=item.kind,
    )


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def metrics(predictions: Sequence[Prediction]) -> Metrics:
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
    return Metrics(
        n=len(predictions), n_in_scope=len(ins), n_oos=len(oos),
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
    )


def summarize(
    predictions: Sequence[Prediction], *, kb: str = "", questions: str = "",
    policy: dict[str, float] | None = None,
) -> EvalReport:
    """The report of a list of predictions: overall, and per kind when lines give one."""
    kinds = sorted({p.question_kind for p in predictions if p.question_kind is not None})
    by_kind = {k: metrics([p for p in predictions if p.question_kind == k]) for k in kinds}
    return EvalReport(**metrics(predictions).model_dump(), kb=kb, questions=questions,
                      policy=policy or {}, by_kind=by_kind, predictions=list(predictions))


Progress = Callable[[int, int], None]


def evaluate(
    service: KnowledgeService, questions: Sequence[LabelledQuestion], *, now: datetime,
    kb: str = "", questions_name: str = "", progress: Progress | None = None,
) -> EvalReport:
    """Decide every question (lines without ``at`` are asked at ``now``) and measure.

    ``progress(done, total)`` is called after each question.
    """
    predictions = []
    for done, item in enumerate(questions, start=1):
        predictions.append(predict(service, item, now))
        if progress is not None:
            progress(done, len(questions))
    index = service.index
    policy = index.policy.model_dump() if index is not None else {}
    return summarize(predictions, kb=kb, questions=questions_name, policy=policy)


def _fmt(value: float | None, percent: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:.1f}%" if percent else f"{value:.1f}"


_ROWS = ("in_scope_top1", "oos_recall", "answer_precision", "accuracy", "clarify_rate",
         "clarify_hit", "retrieval_top1")


def format_report(report: EvalReport) -> str:
    """A plain-text table: the lines the bot got wrong, the metrics, then one row per kind."""
    out: list[str] = []
    wrong = [p for p in report.predictions if not p.correct]
    if wrong:
        out.append(f"{'line':>5}  {'expected':<24} {'decision':<9} {'got':<24} {'conf':>5}  text")
        for p in wrong:
            got = p.entry_id or ",".join(p.options) or "-"
            conf = f"{p.confidence:.2f}" if p.confidence is not None else "-"
            out.append(f"{p.line:>5}  {p.expected or '(handoff)':<24} {p.kind.value:<9} "
                       f"{got:<24} {conf:>5}  {p.text}")
        out.append("")
    rows = [
        ("questions", f"{report.n} ({report.n_in_scope} in scope, {report.n_oos} out of scope)"),
        *((name, _fmt(getattr(report, name))) for name in _ROWS),
        ("retrieval_top3", _fmt(report.retrieval_top3)),
        ("decisions", f"{report.answered} answer, {report.clarified} clarify, "
                      f"{report.handed_off} handoff"),
        ("p50_ms / p95_ms", f"{_fmt(report.p50_ms, False)} / {_fmt(report.p95_ms, False)}"),
        ("policy", ", ".join(f"{k} {v:.2f}" for k, v in report.policy.items()) or "-"),
    ]
    out += [f"{name:<18} {value}" for name, value in rows]
    if report.by_kind:
        out += ["", f"{'kind':<12} {'n':>5} " + " ".join(f"{name[:14]:>14}" for name in _ROWS)]
        for kind, m in report.by_kind.items():
            out.append(f"{kind:<12} {m.n:>5} "
                       + " ".join(f"{_fmt(getattr(m, name)):>14}" for name in _ROWS))
    return "\n".join(out)
