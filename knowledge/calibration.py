"""Publish-time calibration of the answer policy (`knowledge.decision`) for one knowledge base.

`calibrate` sets every number for one knowledge base from its own data, never by hand:

1. *Calibration queries*: every question or variant of an entry that has at least two is asked
   with that one text left out of the index (the entry keeps its other texts), as the shopper
   meets the index while the entry is live (a campaign entry inside its window, an evergreen one
   without the windowed entries); the knowledge base's own ``tests:`` questions are asked as they
   are; generic questions a shop bot must not answer (``data/generic_oos.txt``) and the tests
   expecting a handoff are the out-of-scope queries.
2. A logistic `Scorer` over the chosen signals is fitted on them (the right entry vs the other
   pooled entries), so ``Candidate.score`` estimates "this entry is the answer".
3. ``clarify`` is cut so that at least ``target_oos_handoff`` (90%) of the out-of-scope queries
   score below it: they are handed off, not clarified.
4. `Confidence` is a logistic model of "the best candidate is right" over ``logit(s1)`` and
   ``logit(s1) − logit(s2)``, fitted on the in-scope queries. ``min_confidence`` is the lowest
   (never below 0.5) for which the expected wrong answers over the in-scope queries stay within
   ``target_wrong_rate`` (5%); ``answer`` is the lowest best score (at least ``clarify``) that
   lets at most that share of the out-of-scope queries be answered.
5. ``margin`` is the lead over a runner-up that 90% of the in-scope queries whose right entry is
   that runner-up (second or third, above ``clarify``) stay under: closer candidates are offered
   together, farther ones are not.

Why a confidence model and a target instead of a search for the best utility on the held-out
variants (the first policy): a held-out variant is harder than a shopper's question (the variants
cover different facets, so what is left of the entry matches it less well: on the demo store its
top-1 is about 0.6 against 0.88 for real questions), and a utility optimised on that distribution
preferred clarifying (29% of in-scope demo questions answered, 59% of all clarified). The
*conditional* chance that the best candidate is right given its score and lead carries over from
held-out variants to real questions much better than the distribution of scores does
(benchmarks/results/retrieval.md), and a wrong-answer target counted over all in-scope queries
only grows when a doubtful query is answered, so the easier real questions are answered more,
not less. Without any in-scope query (no entry has variants, no tests) the dense-only default
scorer is kept and the cuts come from the out-of-scope queries alone.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from knowledge.decision import (
    MAX_OPTIONS,
    MIN_CONFIDENCE,
    TARGET_OOS_HANDOFF,
    TARGET_WRONG_RATE,
    Confidence,
    Thresholds,
    logit_array,
)
from knowledge.models import Entry, KnowledgeBase
from knowledge.retrieval import DEFAULT_SCORER, Retriever, Scored, Scorer
from knowledge.text import for_matching

logger = logging.getLogger(__name__)

GENERIC_OOS_PATH = Path(__file__).resolve().parent / "data" / "generic_oos.txt"
DEFAULT_SIGNALS = ("dense", "second", "lexical", "code")  # measured: benchmarks/retrieval.py
_NEGATIVES_PER_QUERY = 8  # wrong entries per calibration query used to fit the scorer
_CLOSE_QUANTILE = 0.9  # share of right runner-ups within ``margin`` of the best
_FALLBACK_MARGIN = 0.1  # lead needed without any in-scope query to learn from
_TIE_PRIOR = 0.1  # weight of the "a tie is a coin flip" pseudo-query per in-scope query


def load_generic_oos(path: Path = GENERIC_OOS_PATH) -> list[str]:
    """The generic out-of-scope questions, one per line (blank lines and ``#`` comments skipped)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]


# ---- calibration queries -------------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationQuery:
    """One calibration query's pooled entries with raw signals, and the right entry (None: OOS)."""

    text: str
    expected: str | None
    pool: list[Scored]
    acceptable: frozenset[str] = frozenset()  # entries that are also right (campaign twins)
    source: str = "held-out"  # "held-out" text, the knowledge base's own "test", or "oos"


IntentOf = Callable[[str], tuple[str | None, float | None]]


def collect(
    retriever: Retriever,
    kb: KnowledgeBase,
    oos_questions: Iterable[str],
    intent_of: IntentOf | None = None,
) -> list[CalibrationQuery]:
    """The calibration queries of ``kb`` with their raw signals (held-out texts, tests, OOS).

    Each held-out text is asked as a shopper would meet the index while its entry is live: a
    windowed (campaign) entry's texts at the start of its window, campaign precedence applied; an
    evergreen entry's texts with the windowed entries left out. Only the asked text leaves the
    index; the entry keeps its other texts. The knowledge base's test questions are asked at their
    own time when they give one, else like a held-out text of their expected entry (nothing left
    out); tests expecting a handoff and the generic questions are asked against every entry.
    ``intent_of`` gives Rasa's intent and confidence for a text, when the ``intent`` signal is to
    be calibrated too.
    """
    twins = _campaign_twins(retriever)
    windowed = [t for e in kb.entries if _windowed(e) for t in e.texts]
    # (text, expected entry or None, time to ask at, texts left out, source)
    asked: list[tuple[str, Entry | None, datetime | None, list[str], str]] = []
    for entry in kb.entries:
        texts = list(dict.fromkeys(for_matching(t) or t for t in entry.texts))
        if len(texts) > 1:
            for text in texts:
                at, out = _as_live(entry, windowed)
                asked.append((text, entry, at, [text, *out], "held-out"))
    for test in kb.tests:
        owner = kb.entry(test.expected) if test.expected is not None else None
        if test.expected is not None and owner is None:
            continue  # the loader reports unknown ids; nothing to learn from here
        if owner is None:
            asked.append((test.text, None, None, [], "test"))
        elif test.at is not None:
            asked.append((test.text, owner, test.at, [], "test"))
        else:
            at, out = _as_live(owner, windowed)
            asked.append((test.text, owner, at, out, "test"))
    asked += [(question, None, None, [], "oos") for question in oos_questions]
    vectors = retriever.encode_queries([a[0] for a in asked]) if asked else []
    out_queries: list[CalibrationQuery] = []
    for (text, owner, at, leave_out, source), vecs in zip(asked, vectors, strict=True):
        intent, confidence = intent_of(text) if intent_of is not None else (None, None)
        pool = retriever.score_all(
            text, at=at, exclude_texts=leave_out, query_vectors=vecs, intent=intent,
            intent_confidence=confidence,
        )
        if owner is None:
            out_queries.append(CalibrationQuery(text, None, pool, source=source))
        else:
            also = twins.get(owner.id, frozenset()) if at is not None else frozenset()
            out_queries.append(CalibrationQuery(text, owner.id, pool, also, source))
    return out_queries


def _as_live(entry: Entry, windowed: list[str]) -> tuple[datetime | None, list[str]]:
    """When to ask a question of ``entry`` and which texts to leave out, as while it is live."""
    if _windowed(entry):  # inside its window, campaign precedence applied
        return entry.valid_from or entry.valid_until, []
    return None, windowed  # evergreen: as when no campaign runs


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


def _logistic(
    x: np.ndarray,
    y: np.ndarray,
    l2: float = 1e-2,
    *,
    balanced: bool = True,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Weights and bias of an L2-regularised logistic regression (Newton on standardised ``x``).

    ``balanced`` weighs both (0/1) classes equally (a ranking score); otherwise rows count as
    ``weights`` (all the same by default) and ``y`` may be soft, so the output estimates the
    probability of ``y`` itself.
    """
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std < 1e-9] = 1.0
    z = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
    pos = y.sum()
    if balanced and 0 < pos < len(y):
        sample = np.where(y == 1.0, 0.5 / pos, 0.5 / (len(y) - pos))
    else:
        w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
        sample = w / w.sum()
    beta = np.zeros(z.shape[1])
    ridge = l2 * np.eye(z.shape[1])
    ridge[-1, -1] = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ beta, -60, 60)))
        grad = z.T @ (sample * (p - y)) + ridge @ beta
        hess = (z * (sample * p * (1 - p))[:, None]).T @ z + ridge + 1e-9 * np.eye(z.shape[1])
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    weights = beta[:-1] / std
    return weights, float(beta[-1] - (weights * mean).sum())


@dataclass(frozen=True)
class _Outcomes:
    """Per-query arrays the calibration needs (scores of the top three, best first)."""

    s: np.ndarray  # (n, 3) scores, 0 where fewer candidates
    rank: np.ndarray  # rank of the right entry (0 best); 99 when absent and for OOS
    in_scope: np.ndarray  # bool

    @property
    def s1(self) -> np.ndarray:
        """Best scores."""
        return self.s[:, 0]

    @property
    def s2(self) -> np.ndarray:
        """Runner-up scores."""
        return self.s[:, 1]


def _outcomes(queries: Sequence[CalibrationQuery], scorer: Scorer) -> _Outcomes:
    """Score every pooled entry of every query at once and read off the top three and the rank."""
    n = len(queries)
    s = np.zeros((n, MAX_OPTIONS))
    rank = np.full(n, 99)
    sizes = [len(q.pool) for q in queries]
    if not sum(sizes):
        return _Outcomes(s, rank, np.array([q.expected is not None for q in queries], dtype=bool))
    names = list(scorer.weights)
    x = np.array([[c.signals.get(k, 0.0) for k in names] for q in queries for c in q.pool])
    w = np.array([scorer.weights[k] for k in names])
    z = (x @ w if len(names) else np.zeros(len(x))) + scorer.bias
    scores = 1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0)))
    start = 0
    for i, (q, size) in enumerate(zip(queries, sizes, strict=True)):
        row = scores[start : start + size]
        start += size
        if not size:
            continue
        order = np.argsort(-row, kind="stable")
        top = row[order[:MAX_OPTIONS]]
        s[i, : len(top)] = top
        if q.expected is not None:
            right = {q.expected, *q.acceptable}
            hits = [j for j, k in enumerate(order) if q.pool[k].entry.id in right]
            if hits:
                rank[i] = hits[0]
    in_scope = np.array([q.expected is not None for q in queries], dtype=bool)
    return _Outcomes(s, rank, in_scope)


def outcome_kinds(o: _Outcomes, t: Thresholds) -> tuple[np.ndarray, np.ndarray]:
    """`choose` for every calibration query at once.

    Returns:
        Kinds (0 handoff, 1 answer, 2 clarify) and whether the right entry is among the options
        (False unless clarified).
    """
    s1, s2 = o.s1, o.s2
    if t.confidence is None:
        sure = s1 - s2 >= t.margin
    else:
        sure = t.confidence.p_array(s1, s2) >= t.min_confidence
    answered = (s1 >= t.answer) & sure
    close = (o.s >= t.clarify) & (s1[:, None] - o.s < t.near)
    close[:, 0] = s1 >= t.clarify
    clarified = ~answered & close[:, 0] & (close[:, 1:].sum(axis=1) >= 1)
    in_top = o.rank < MAX_OPTIONS
    offered = np.zeros(len(s1), dtype=bool)
    offered[in_top] = close[np.nonzero(in_top)[0], o.rank[in_top]]
    kinds = np.where(answered, 1, np.where(clarified, 2, 0))
    return kinds, clarified & offered


def rates(o: _Outcomes, t: Thresholds) -> dict[str, float]:
    """What ``t`` does on the calibration queries (shares of in-scope / of OOS queries)."""
    kinds, hit = outcome_kinds(o, t)
    ins, oos = o.in_scope, ~o.in_scope
    right = (kinds == 1) & (o.rank == 0)

    def share(mask: np.ndarray, among: np.ndarray) -> float:
        return float(mask[among].mean()) if among.any() else 0.0

    return {
        "in_scope_answered_right": share(right, ins),
        "in_scope_answered_wrong": share((kinds == 1) & ~right, ins),
        "in_scope_clarified": share(kinds == 2, ins),
        "in_scope_clarified_hit": share(hit, ins),
        "oos_handoff": share(kinds == 0, oos),
        "oos_clarified": share(kinds == 2, oos),
        "oos_answered": share(kinds == 1, oos),
    }


def calibrate(
    retriever: Retriever,
    kb: KnowledgeBase,
    oos_questions: Iterable[str] | None = None,
    *,
    signals: Sequence[str] = DEFAULT_SIGNALS,
    fit: bool = True,
    target_wrong_rate: float | None = None,
    target_oos_handoff: float | None = None,
) -> Thresholds:
    """Thresholds (and the scorer they apply to) for ``kb``, from its own data; see the module doc.

    Args:
        retriever: A retriever built over ``kb.entries`` (its scorer is replaced, not used).
        kb: The knowledge base (its ``tests`` are calibration queries too).
        oos_questions: Questions the bot must not answer; `load_generic_oos` when ``None``.
        signals: Signals the fitted scorer may use (those the retriever lacks are dropped).
        fit: Fit a scorer; ``False`` keeps the retriever's scorer and only sets thresholds.
        target_wrong_rate: Share of calibration queries that may be answered wrong
            (`KnowledgeSettings.target_wrong_rate` when ``None``).
        target_oos_handoff: Share of out-of-scope queries that must score below ``clarify``
            (`KnowledgeSettings.target_oos_handoff` when ``None``).
    """
    if target_wrong_rate is None or target_oos_handoff is None:
        from knowledge.settings import get_settings

        settings = get_settings()
        if target_wrong_rate is None:
            target_wrong_rate = settings.target_wrong_rate
        if target_oos_handoff is None:
            target_oos_handoff = settings.target_oos_handoff
    oos = list(oos_questions) if oos_questions is not None else load_generic_oos()
    queries = collect(retriever, kb, oos)
    usable = [s for s in signals if s != "second" or retriever.has_second]
    return calibrate_queries(
        queries,
        usable if fit else None,
        n_entries=len(kb.entries),
        scorer=retriever.scorer,
        target_wrong_rate=target_wrong_rate,
        target_oos_handoff=target_oos_handoff,
    )


def calibrate_queries(
    queries: Sequence[CalibrationQuery],
    signals: Sequence[str] | None,
    *,
    n_entries: int,
    scorer: Scorer = DEFAULT_SCORER,
    target_wrong_rate: float = TARGET_WRONG_RATE,
    target_oos_handoff: float = TARGET_OOS_HANDOFF,
) -> Thresholds:
    """`calibrate` on already collected queries (``signals=None``: keep ``scorer``, no fit)."""
    n_in = sum(1 for q in queries if q.expected is not None)
    n_oos = len(queries) - n_in
    n_tests = sum(1 for q in queries if q.source == "test")
    if signals is not None and n_in:
        scorer = fit_scorer(queries, signals)
    o = _outcomes(queries, scorer)
    clarify = _cut_above(o.s1[~o.in_scope], target_oos_handoff)
    common = {"scorer": scorer, "in_scope_queries": n_in, "test_queries": n_tests,
              "oos_queries": n_oos, "target_wrong_rate": target_wrong_rate,
              "target_oos_handoff": target_oos_handoff}
    held_out = sum(1 for q in queries if q.source == "held-out")
    generic = sum(1 for q in queries if q.source == "oos")
    sources = f"{held_out} held-out texts of {n_entries} entries + {n_tests} tests + {generic} OOS"
    if n_in:
        draft = Thresholds(answer=clarify, clarify=clarify, margin=1.0, **common)
        confidence = _fit_confidence(o)
        p = confidence.p_array(o.s1, o.s2)
        min_confidence = _min_confidence(p[o.in_scope], o.s1[o.in_scope] >= clarify,
                                         target_wrong_rate)
        draft = draft.model_copy(update={"confidence": confidence,
                                         "min_confidence": min_confidence})
        answer = _answer_floor(o, draft, target_wrong_rate)
        margin = _close_margin(o, clarify)
        how = f"calibrated on {sources}"
        thresholds = draft.model_copy(update={"answer": answer, "margin": margin, "method": how})
    else:
        answer = max(clarify, _cut_above(o.s1[~o.in_scope], 1.0 - target_wrong_rate))
        how = f"no entry has variants and no tests: cut above the {n_oos} OOS questions' scores"
        thresholds = Thresholds(answer=answer, clarify=clarify, margin=_FALLBACK_MARGIN,
                                method=how, **common)
    expected = {k: round(v, 4) for k, v in rates(o, thresholds).items()}
    thresholds = thresholds.model_copy(update={"expected": expected})
    logger.info("%s: answer %.3f clarify %.3f margin %.3f min_confidence %.3f", how,
                thresholds.answer, thresholds.clarify, thresholds.margin,
                thresholds.min_confidence)
    return thresholds


def _cut_above(values: np.ndarray, share: float) -> float:
    """The lowest cut with at least ``share`` of ``values`` strictly below it (in [0, 1])."""
    if not len(values):
        return 0.5
    ordered = np.sort(values)
    k = math.ceil(share * len(ordered) - 1e-9)
    if k <= 0:
        return 0.0
    return float(min(1.0, ordered[k - 1] + 1e-6))


def _fit_confidence(o: _Outcomes) -> Confidence:
    """`Confidence` fitted (every query counting the same) on the in-scope calibration queries.

    A weak symmetry prior keeps the lead meaningful when the queries show no wrong top (a small
    or very clean knowledge base): each query also counts `_TIE_PRIOR` of a tied copy of itself
    (runner-up as good as the best), right half the time.
    """
    ins = o.in_scope
    l1, l2 = logit_array(o.s1[ins]), logit_array(o.s2[ins])
    n = len(l1)
    x = np.vstack([np.column_stack([l1, l1 - l2]), np.column_stack([l1, np.zeros(n)])])
    y = np.concatenate([(o.rank[ins] == 0).astype(np.float64), np.full(n, 0.5)])
    w = np.concatenate([np.ones(n), np.full(n, _TIE_PRIOR)])
    weights, bias = _logistic(x, y, balanced=False, weights=w)
    y = y[:n]
    return Confidence(
        level=round(float(weights[0]), 6), lead=round(float(weights[1]), 6),
        bias=round(float(bias), 6),
        fitted_on=f"{int(y.sum())} of {len(y)} in-scope queries right at the top",
    )


def _min_confidence(p: np.ndarray, eligible: np.ndarray, target: float) -> float:
    """The lowest confidence to answer with expected wrong answers ≤ ``target`` of all queries.

    ``p`` are the in-scope queries' confidences, ``eligible`` whether their best score reaches
    the floor. Answering the most confident first, the expected wrong answers (``Σ 1 − p``)
    only grow; the cut is where they would pass the target, never below `MIN_CONFIDENCE`.
    """
    if not len(p):
        return MIN_CONFIDENCE
    cand = np.where(eligible, p, -1.0)
    order = np.argsort(-cand, kind="stable")
    ranked = cand[order]
    wrong = np.cumsum(np.where(ranked >= 0.0, 1.0 - ranked, 0.0)) / len(p)
    within = np.nonzero((wrong <= target) & (ranked >= 0.0))[0]
    if not len(within):
        return 1.0
    return float(np.clip(ranked[int(within[-1])], MIN_CONFIDENCE, 1.0))


def _answer_floor(o: _Outcomes, t: Thresholds, target: float) -> float:
    """The lowest best score (≥ ``clarify``) to answer with at most ``target`` of OOS answered."""
    oos = ~o.in_scope
    if not oos.any():
        return t.clarify
    sure = np.ones(len(o.s1), dtype=bool)
    if t.confidence is not None:
        sure = t.confidence.p_array(o.s1, o.s2) >= t.min_confidence
    tops = np.sort(o.s1[oos & sure & (o.s1 >= t.clarify)])[::-1]
    allowed = math.floor(target * int(oos.sum()) + 1e-9)
    if len(tops) <= allowed:
        return t.clarify
    return float(min(1.0, max(t.clarify, tops[allowed] + 1e-6)))


def _close_margin(o: _Outcomes, clarify: float) -> float:
    """The lead over a right runner-up (2nd or 3rd, ≥ ``clarify``) that 90% of them stay under."""
    rows = np.nonzero(o.in_scope & (o.rank >= 1) & (o.rank < MAX_OPTIONS))[0]
    gaps = [o.s1[i] - o.s[i, o.rank[i]] for i in rows if o.s[i, o.rank[i]] >= clarify]
    if not gaps:
        return 1.0
    return float(min(1.0, np.quantile(gaps, _CLOSE_QUANTILE) + 1e-6))
