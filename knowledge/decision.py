"""The answer-level policy: answer, clarify or hand off, thresholds calibrated per knowledge base.

`decide` looks at the ranked candidates of one question:

- **answer** when the best score reaches ``answer`` and leads the runner-up by at least ``margin``;
- **clarify** when the best score reaches ``clarify`` (but the answer rule failed): the options
  are the top candidates scoring at least ``clarify`` (up to 3), padded with the runner-up so there
  are two;
- **handoff** otherwise (nothing active, or nothing good enough).

`calibrate` sets those numbers for one knowledge base from its own texts, never by hand:

1. *Leave-one-out*: every question or variant of an entry that has at least two is asked against
   the index with that one text left out, as the shopper meets the index while the entry is live
   (a campaign entry inside its window, an evergreen entry without the windowed ones); the entry
   it belongs to is the right answer.
2. *Out of scope*: generic questions a shop bot must not answer (``data/generic_oos.txt``).
3. A logistic `Scorer` over the chosen signals is fitted on those queries (the right entry vs the
   other pooled entries), so ``Candidate.score`` estimates "this entry is the answer".
4. ``answer``, ``clarify`` and ``margin`` are searched on a grid to maximise a utility that weighs
   the in-scope and the out-of-scope queries equally: a right answer is worth 1, a wrong answer
   (in scope or out) costs ``wrong_answer_cost``, a clarification offering the right entry is
   worth ``clarify_value``, a handoff of an out-of-scope question is worth 1 and of an in-scope one
   0. Among equally good thresholds the middle of the plateau is taken, so the answer threshold
   sits between the two score distributions rather than on the edge of one.

Without any entry that has variants there is nothing to leave out: the dense-only default scorer
is kept and the thresholds are cut above the generic questions' scores (95th/80th percentile).

Leave-one-out is a cautious proxy. A left-out variant only has its siblings to match, while real
shoppers often phrase a question like some variant; on the demo store the leave-one-out top-1 is
about 0.6 against 0.88 for its held-out questions, so the calibrated policy there prefers
clarifying to answering (few wrong answers, many clarifications; benchmarks/results). A shop that
wants more direct answers lowers ``clarify_value`` or ``wrong_answer_cost``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from knowledge.models import Candidate, Decision, DecisionKind, Entry, KnowledgeBase
from knowledge.retrieval import DEFAULT_SCORER, Retriever, Scored, Scorer
from knowledge.text import for_matching

logger = logging.getLogger(__name__)

GENERIC_OOS_PATH = Path(__file__).resolve().parent / "data" / "generic_oos.txt"
DEFAULT_SIGNALS = ("dense", "second", "lexical", "code")  # measured: benchmarks/retrieval.py
MAX_OPTIONS = 3
_NEGATIVES_PER_QUERY = 8  # wrong entries per calibration query used to fit the scorer
_MARGINS = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3)


class Thresholds(BaseModel):
    """The calibrated policy of one knowledge base: how to score and where to cut."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    answer: float = Field(ge=0.0, le=1.0)  # best score needed to answer
    clarify: float = Field(ge=0.0, le=1.0)  # best score needed to offer options instead of a person
    margin: float = Field(ge=0.0, le=1.0)  # lead over the runner-up needed to answer
    scorer: Scorer = DEFAULT_SCORER  # the signal combination the thresholds apply to
    method: str = "default"  # how they were calibrated, in words
    in_scope_queries: int = 0  # leave-one-out queries used
    oos_queries: int = 0  # out-of-scope queries used
    expected: dict[str, float] = Field(default_factory=dict)  # rates on the calibration queries
    wrong_answer_cost: float = 1.0
    clarify_value: float = 0.5


#: Used only before a knowledge base is calibrated (dense-only default scorer).
DEFAULT_THRESHOLDS = Thresholds(answer=0.8, clarify=0.5, margin=0.1)


def load_generic_oos(path: Path = GENERIC_OOS_PATH) -> list[str]:
    """The generic out-of-scope questions, one per line (blank lines and ``#`` comments skipped)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]


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
    best = ranked[0].score
    runner = ranked[1].score if len(ranked) > 1 else 0.0
    lead = f"best {best:.3f}, runner-up {runner:.3f}"
    t = thresholds
    if kind is DecisionKind.ANSWER:
        reason = f"{lead}: ≥ answer {t.answer:.3f} with lead ≥ {t.margin:.3f}"
        return Decision(kind=kind, entry=ranked[0], reason=reason, **common)
    if kind is DecisionKind.CLARIFY:
        why = "lead too small" if best >= t.answer else f"< answer {t.answer:.3f}"
        reason = f"{lead}: ≥ clarify {t.clarify:.3f} but {why}"
        return Decision(kind=kind, options=list(ranked[:count]), reason=reason, **common)
    return Decision(kind=kind, reason=f"{lead}: < clarify {t.clarify:.3f}", **common)


def choose(scores: Sequence[float], thresholds: Thresholds) -> tuple[DecisionKind, int]:
    """The decision for scores sorted best first, and how many top candidates it shows (options)."""
    if not scores:
        return DecisionKind.HANDOFF, 0
    best = scores[0]
    runner = scores[1] if len(scores) > 1 else 0.0
    if best >= thresholds.answer and best - runner >= thresholds.margin:
        return DecisionKind.ANSWER, 1
    if best >= thresholds.clarify:
        above = sum(1 for s in scores[:MAX_OPTIONS] if s >= thresholds.clarify)
        return DecisionKind.CLARIFY, min(len(scores), max(2, above))
    return DecisionKind.HANDOFF, 0


# ---- calibrate ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationQuery:
    """One calibration query's pooled entries with raw signals, and the right entry (None: OOS)."""

    text: str
    expected: str | None
    pool: list[Scored]
    acceptable: frozenset[str] = frozenset()  # entries that are also right (campaign twins)


IntentOf = Callable[[str], tuple[str | None, float | None]]


def collect(
    retriever: Retriever,
    kb: KnowledgeBase,
    oos_questions: Iterable[str],
    intent_of: IntentOf | None = None,
) -> list[CalibrationQuery]:
    """The leave-one-out and out-of-scope calibration queries of ``kb`` with their raw signals.

    Each held-out text is asked as a shopper would meet the index while its entry is live: a
    windowed (campaign) entry's texts at the start of its window, campaign precedence applied; an
    evergreen entry's texts with the windowed entries left out. Out-of-scope questions are asked
    against every entry. ``intent_of`` gives Rasa's intent and confidence for a text, when the
    ``intent`` signal is to be calibrated too.
    """
    twins = _campaign_twins(retriever)
    windowed = [t for e in kb.entries if _windowed(e) for t in e.texts]
    asked: list[tuple[str, Entry | None]] = []
    for entry in kb.entries:
        texts = list(dict.fromkeys(for_matching(t) or t for t in entry.texts))
        if len(texts) > 1:
            asked += [(text, entry) for text in texts]
    asked += [(question, None) for question in oos_questions]
    vectors = retriever.encode_queries([text for text, _ in asked]) if asked else []
    out: list[CalibrationQuery] = []
    for (text, owner), vecs in zip(asked, vectors, strict=True):
        intent, confidence = intent_of(text) if intent_of is not None else (None, None)
        ask = partial(
            retriever.score_all, text, query_vectors=vecs, intent=intent,
            intent_confidence=confidence,
        )
        if owner is None:  # out of scope: against every entry, whatever its window
            pool = ask(at=None)
            out.append(CalibrationQuery(text, None, pool))
        elif _windowed(owner):  # inside its window, campaign precedence applied
            at = owner.valid_from or owner.valid_until
            pool = ask(at=at, exclude_texts=[text])
            out.append(CalibrationQuery(text, owner.id, pool, twins.get(owner.id, frozenset())))
        else:  # evergreen: as when no campaign runs
            pool = ask(at=None, exclude_texts=[text, *windowed])
            out.append(CalibrationQuery(text, owner.id, pool))
    return out


def _windowed(entry: Entry) -> bool:
    return entry.valid_from is not None or entry.valid_until is not None


def _campaign_twins(retriever: Retriever) -> dict[str, frozenset[str]]:
    """Entry id → ids of entries it shadows or is shadowed by (same topic, other campaign)."""
    ids = [e.id for e in retriever.entries]
    pairs: dict[str, set[str]] = {}
    for campaign, evergreen in retriever.shadows.items():
        for e in evergreen:
            pairs.setdefault(ids[campaign], set()).add(ids[e])
            pairs.setdefault(ids[e], set()).add(ids[campaign])
    return {k: frozenset(v) for k, v in pairs.items()}


def fit_scorer(queries: Sequence[CalibrationQuery], signals: Sequence[str]) -> Scorer:
    """A logistic scorer separating right entries from the others on ``queries``.

    Each query contributes its right entry (if pooled) as a positive and its best
    ``_NEGATIVES_PER_QUERY`` wrong entries (by dense score) as negatives; positives and negatives
    are weighted to count equally. L2-regularised Newton iterations on standardised features.
    """
    rows: list[list[float]] = []
    labels: list[float] = []
    for q in queries:
        wrong = [s for s in q.pool if s.entry.id != q.expected and s.entry.id not in q.acceptable]
        wrong.sort(key=lambda s: s.signals.get("dense", 0.0), reverse=True)
        right = [s for s in q.pool if s.entry.id == q.expected]
        for s, y in [(s, 1.0) for s in right] + [(s, 0.0) for s in wrong[:_NEGATIVES_PER_QUERY]]:
            rows.append([s.signals.get(name, 0.0) for name in signals])
            labels.append(y)
    target = np.asarray(labels)
    if not len(target) or target.min() == target.max():
        return DEFAULT_SCORER
    x = np.asarray(rows, dtype=np.float64)
    weights, bias = _logistic(x, target)
    return Scorer(
        weights={name: round(float(w), 6) for name, w in zip(signals, weights, strict=True)},
        bias=round(float(bias), 6),
        fitted_on=f"logistic over {', '.join(signals)}: {int(target.sum())} right, "
        f"{int(len(target) - target.sum())} wrong pairs",
    )


def _logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2) -> tuple[np.ndarray, float]:
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std < 1e-9] = 1.0
    z = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
    pos = y.sum()
    sample = np.where(y == 1.0, 0.5 / pos, 0.5 / (len(y) - pos))
    beta = np.zeros(z.shape[1])
    ridge = l2 * np.eye(z.shape[1])
    ridge[-1, -1] = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ beta, -60, 60)))
        grad = z.T @ (sample * (p - y)) + ridge @ beta
        hess = (z * (sample * p * (1 - p))[:, None]).T @ z + ridge
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    weights = beta[:-1] / std
    return weights, float(beta[-1] - (weights * mean).sum())


@dataclass(frozen=True)
class _Outcomes:
    """Per-query arrays the threshold search needs (scores sorted best first)."""

    s1: np.ndarray
    s2: np.ndarray
    s3: np.ndarray
    rank: np.ndarray  # rank of the right entry (0 best); large when absent; OOS: large
    s_true: np.ndarray  # score of the right entry (0 when absent)
    in_scope: np.ndarray  # bool


def _outcomes(queries: Sequence[CalibrationQuery], scorer: Scorer) -> _Outcomes:
    n = len(queries)
    s = np.zeros((n, 3))
    rank = np.full(n, 99)
    s_true = np.zeros(n)
    for i, q in enumerate(queries):
        scored = sorted(
            ((scorer.score(c.signals), c.entry.id) for c in q.pool), key=lambda t: -t[0]
        )
        right = {q.expected, *q.acceptable} if q.expected else set()
        for j, (score, entry_id) in enumerate(scored):
            if j < 3:
                s[i, j] = score
            if entry_id in right and rank[i] == 99:
                rank[i], s_true[i] = j, score
    in_scope = np.array([q.expected is not None for q in queries])
    return _Outcomes(s[:, 0], s[:, 1], s[:, 2], rank, s_true, in_scope)


def utility(
    o: _Outcomes,
    answer: float,
    clarify: float,
    margin: float,
    wrong_answer_cost: float = 1.0,
    clarify_value: float = 0.5,
) -> tuple[float, dict[str, float]]:
    """The balanced utility of one threshold setting on calibration outcomes, and its rates.

    Mirrors `choose`: answer when ``s1 >= answer`` and ``s1 - s2 >= margin``; else clarify when
    ``s1 >= clarify`` with options = top 3 scoring ``>= clarify``, at least the top 2.
    """
    answered = (o.s1 >= answer) & (o.s1 - o.s2 >= margin)
    clarified = ~answered & (o.s1 >= clarify)
    in_options = (o.rank <= 1) | ((o.rank == 2) & (o.s_true >= clarify))
    ins, oos = o.in_scope, ~o.in_scope
    right = answered & (o.rank == 0)
    value = np.where(right, 1.0, np.where(answered, -wrong_answer_cost, 0.0))
    value = value + np.where(clarified & in_options, clarify_value, 0.0)
    oos_value = np.where(answered, -wrong_answer_cost, np.where(clarified, 0.0, 1.0))
    u_in = float(value[ins].mean()) if ins.any() else 0.0
    u_oos = float(oos_value[oos].mean()) if oos.any() else 0.0
    rates = {
        "in_scope_answered_right": float(right[ins].mean()) if ins.any() else 0.0,
        "in_scope_answered_wrong": float((answered & ~right)[ins].mean()) if ins.any() else 0.0,
        "in_scope_clarified": float(clarified[ins].mean()) if ins.any() else 0.0,
        "oos_handoff": float((~answered & ~clarified)[oos].mean()) if oos.any() else 0.0,
        "oos_answered": float(answered[oos].mean()) if oos.any() else 0.0,
    }
    return (u_in + u_oos) / 2.0, rates


def calibrate(
    retriever: Retriever,
    kb: KnowledgeBase,
    oos_questions: Iterable[str] | None = None,
    *,
    signals: Sequence[str] = DEFAULT_SIGNALS,
    fit: bool = True,
    wrong_answer_cost: float = 1.0,
    clarify_value: float = 0.5,
) -> Thresholds:
    """Thresholds (and the scorer they apply to) for ``kb``, from its own texts; see the module doc.

    Args:
        retriever: A retriever built over ``kb.entries`` (its scorer is replaced, not used).
        kb: The knowledge base.
        oos_questions: Questions the bot must not answer; `load_generic_oos` when ``None``.
        signals: Signals the fitted scorer may use (those the retriever lacks are dropped).
        fit: Fit a scorer; ``False`` keeps the retriever's scorer and only sets thresholds.
        wrong_answer_cost: What a wrong answer costs relative to a right one.
        clarify_value: What a clarification offering the right entry is worth.
    """
    oos = list(oos_questions) if oos_questions is not None else load_generic_oos()
    queries = collect(retriever, kb, oos)
    usable = [s for s in signals if s != "second" or retriever.has_second]
    return calibrate_queries(
        queries,
        usable if fit else None,
        n_entries=len(kb.entries),
        n_oos=len(oos),
        scorer=retriever.scorer,
        wrong_answer_cost=wrong_answer_cost,
        clarify_value=clarify_value,
    )


def calibrate_queries(
    queries: Sequence[CalibrationQuery],
    signals: Sequence[str] | None,
    *,
    n_entries: int,
    n_oos: int,
    scorer: Scorer = DEFAULT_SCORER,
    wrong_answer_cost: float = 1.0,
    clarify_value: float = 0.5,
) -> Thresholds:
    """`calibrate` on already collected queries (``signals=None``: keep ``scorer``, no fit)."""
    n_in = sum(1 for q in queries if q.expected is not None)
    if signals is not None and n_in:
        scorer = fit_scorer(queries, signals)
    outcomes = _outcomes(queries, scorer)
    if n_in:
        answer, clarify, margin, rates = _search(outcomes, wrong_answer_cost, clarify_value)
        how = f"leave-one-out over {n_in} texts of {n_entries} entries + {n_oos} OOS"
    else:
        answer, clarify, margin, rates = _oos_only(outcomes)
        how = f"no entry has variants: cut above the {n_oos} OOS questions' scores"
    logger.info("calibrated %s: answer %.3f clarify %.3f margin %.3f", how, answer, clarify, margin)
    return Thresholds(
        answer=answer,
        clarify=clarify,
        margin=margin,
        scorer=scorer,
        method=how,
        in_scope_queries=n_in,
        oos_queries=n_oos,
        expected={k: round(v, 4) for k, v in rates.items()},
        wrong_answer_cost=wrong_answer_cost,
        clarify_value=clarify_value,
    )


def _grid(values: np.ndarray, size: int = 50) -> np.ndarray:
    """Quantiles of ``values`` and the midpoints between them (a gap's middle is a candidate)."""
    qs = np.quantile(values, np.linspace(0.0, 1.0, size)) if len(values) else np.zeros(0)
    points = np.unique(np.clip(np.concatenate([qs, [0.0, 1.0]]), 0.0, 1.0))
    return np.unique(np.concatenate([points, (points[1:] + points[:-1]) / 2]))


def _search(
    o: _Outcomes, wrong_answer_cost: float, clarify_value: float
) -> tuple[float, float, float, dict[str, float]]:
    grid = _grid(np.concatenate([o.s1, o.s_true[o.in_scope]]))
    results: list[tuple[float, float, float, float]] = []
    ins, oos = o.in_scope, ~o.in_scope
    for margin in _MARGINS:
        for a in grid:
            # `utility` for every clarify threshold at once (rows: clarify values).
            cs = grid[grid <= a][:, None]
            answered = (o.s1 >= a) & (o.s1 - o.s2 >= margin)
            right = answered & (o.rank == 0)
            base = np.where(right, 1.0, np.where(answered, -wrong_answer_cost, 0.0))
            clarified = ~answered & (o.s1 >= cs)
            in_options = (o.rank <= 1) | ((o.rank == 2) & (o.s_true >= cs))
            value = base + np.where(clarified & in_options, clarify_value, 0.0)
            oos_value = np.where(answered, -wrong_answer_cost, np.where(clarified, 0.0, 1.0))
            u_in = value[:, ins].mean(axis=1) if ins.any() else np.zeros(len(cs))
            u_oos = oos_value[:, oos].mean(axis=1) if oos.any() else np.zeros(len(cs))
            for c, u in zip(cs[:, 0], (u_in + u_oos) / 2.0, strict=True):
                results.append((float(u), float(a), float(c), margin))
    best = max(r[0] for r in results)
    ties = [r for r in results if r[0] >= best - 1e-9]
    margin = min(r[3] for r in ties)
    ties = [r for r in ties if r[3] == margin]
    answer = _nearest(ties, float(np.median(sorted({r[1] for r in ties}))))
    clarify = float(np.median(sorted({r[2] for r in ties if r[1] == answer})))
    clarify = min(clarify, answer)
    _, rates = utility(o, answer, clarify, margin, wrong_answer_cost, clarify_value)
    return answer, clarify, margin, rates


def _nearest(ties: Sequence[tuple[float, float, float, float]], answer: float) -> float:
    return min((r[1] for r in ties), key=lambda a: abs(a - answer))


def _oos_only(o: _Outcomes) -> tuple[float, float, float, dict[str, float]]:
    top = o.s1[~o.in_scope]
    answer = float(min(1.0, np.quantile(top, 0.95) + 1e-6)) if len(top) else 0.9
    clarify = float(np.quantile(top, 0.8)) if len(top) else 0.7
    margin = _MARGINS[2]
    _, rates = utility(o, answer, clarify, margin)
    return answer, clarify, margin, rates
