"""Confidence: how likely the best entry is the right answer, judged the same way for every store.

A knowledge base's scores alone do not say whether an answer is right: e5 cosines crowd at 0.85–0.95
whatever the store, a campaign or a plain Q&A sheet shifts them, and held-out variants (what a
store can test itself on) are harder than real questions. So the decision reads *relative*
features of a question — how its best entry compares with the runner-up, with what generic
out-of-scope questions score against this knowledge base (`Profile`), with how crowded that
entry's neighbourhood is, how much of the question's wording the entry covers, what the store's
own held-out variants say at that score — and two gradient-boosted tree ensembles fitted once on
many knowledge bases (dev stores, CLINC150, Banking77, HINT3; benchmarks/generalisation.py) turn
them into ``p_top`` (the best entry is the right answer) and ``p_in3`` (the right answer is among
the first three). They ship in ``data/decision_model.json`` with the ranker's weights and were
chosen by leave-one-knowledge-base-family-out results: every figure in the README comes from a
model that never saw that family.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from knowledge.ranking import Ranker
from knowledge.retrieval import Retriever, Signals
from knowledge.text import tokens

MODEL_PATH = Path(__file__).resolve().parent / "data" / "decision_model.json"
_TOP = 10  # entries whose coverage is compared (the ranker's best)
_ORDER_NUMBER = re.compile(r"(?:\d[\s-]?){8,}|尾号\s*\d{3,}|后[四4]位\s*\d{3,}")

FEATURES = (
    "z1", "z12", "z23", "p1", "dense", "second", "lexical", "answer", "dense_gap", "second_gap",
    "agree_dense", "agree_second", "agree_lexical", "crowd_dense", "crowd_second", "log_texts_top",
    "log_texts_mean", "log_live", "pct_z1", "pct_dense", "pct_second", "z1_over_pool",
    "dense_over_pool", "second_over_pool", "dense_over_crowd", "second_over_crowd", "coverage",
    "missing", "kb_novel", "kb_novel_share", "coverage_gap", "order_number", "head1", "head_max",
    "agree_head", "loo_p1", "loo_head",
)


@dataclass
class Profile:
    """What a knowledge base looks like to the confidence model; built when it is calibrated.

    ``pool_*`` are the sorted best scores of the generic out-of-scope questions against this
    knowledge base; ``loo_*`` the best-entry probability, head probability and rightness of its
    held-out questions and variants (empty when no entry has two texts); ``crowd_*`` each entry's
    closest row of another entry; ``texts_per_entry`` its number of rows; ``idf`` and ``docs`` the
    lexical view of each entry.
    """

    pool_z1: np.ndarray
    pool_dense: np.ndarray
    pool_second: np.ndarray
    crowd_dense: np.ndarray
    crowd_second: np.ndarray
    texts_per_entry: np.ndarray
    docs: list[frozenset[str]]
    idf: dict[str, float]
    max_idf: float
    loo_p1: np.ndarray = field(default_factory=lambda: np.zeros(0))
    loo_head: np.ndarray = field(default_factory=lambda: np.zeros(0))
    loo_right: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def has_loo(self) -> bool:
        """Whether enough held-out variants exist to compare with (20 at least)."""
        return len(self.loo_right) >= 20

    def q90(self, values: np.ndarray) -> float:
        """The 90th percentile of a pool array (0 for an empty pool)."""
        return float(np.quantile(values, 0.9)) if len(values) else 0.0


def crowding(retriever: Retriever) -> tuple[np.ndarray, np.ndarray]:
    """Per entry, the best cosine between one of its rows and a row of another entry.

    A FAISS inner-product search over the rows (vectors are unit length, so inner product is
    cosine) for each row's nearest neighbours, as many as the largest entry has rows plus one:
    at least one of them belongs to another entry.
    """
    import faiss

    out = []
    sizes = np.diff(retriever.starts)
    k = int(min(len(retriever.rows), (sizes.max() if len(sizes) else 0) + 1))
    for matrix in (retriever.primary_rows, retriever.second_rows
                   if retriever.second_rows is not None else retriever.primary_rows):
        per_entry = np.full(len(retriever.entries), -1.0)
        if k > 1:
            index = faiss.IndexFlatIP(matrix.shape[1])
            index.add(np.ascontiguousarray(matrix, dtype=np.float32))
            sims, rows = index.search(np.ascontiguousarray(matrix, dtype=np.float32), k)
            other = (rows >= 0) & (retriever.row_entry[np.maximum(rows, 0)]
                                   != retriever.row_entry[:, None])
            best = np.where(other, sims, -1.0).max(axis=1)
            np.maximum.at(per_entry, retriever.row_entry, best)
        out.append(per_entry)
    return out[0], out[1]


def lexical_view(retriever: Retriever) -> tuple[list[frozenset[str]], dict[str, float], float]:
    """Each entry's tokens (texts and answer), their IDF over entries, the IDF of an unseen one."""
    docs = retriever.entry_tokens()
    n = len(docs)
    df: dict[str, int] = {}
    for doc in docs:
        for t in doc:
            df[t] = df.get(t, 0) + 1
    idf = {t: _idf(f, n) for t, f in df.items()}
    return docs, idf, _idf(0, n)


def _idf(df: int, n: int) -> float:
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


@lru_cache(maxsize=1)
def _general_frequency() -> tuple[dict[str, int], int]:
    from knowledge.text import _jieba

    jb = _jieba()
    return jb.dt.FREQ, jb.dt.total


def _rarity(word: str) -> float:
    """How rare a word is in general Chinese (jieba's dictionary); unknown words are rarest."""
    freq, total = _general_frequency()
    f = freq.get(word, 0)
    return math.log(total / (f + 1)) if f else math.log(total)


def coverage(query: str, profile: Profile,
             entries: Sequence[int]) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Lexical coverage of one query by some entries.

    Returns:
        Per entry, the IDF-weighted share of the query's tokens the entry has and the largest IDF
        of a query word it lacks; then the general rarity of the rarest query word the whole
        knowledge base lacks, and the share of query words it lacks.
    """
    qt = list(dict.fromkeys(tokens(query)))
    words = [t for t in qt if not t.startswith("#")]
    cov = np.zeros(len(entries))
    miss = np.zeros(len(entries))
    if not qt:
        return cov, miss, 0.0, 0.0
    w = np.array([profile.idf.get(t, profile.max_idf) for t in qt])
    for k, j in enumerate(entries):
        doc = profile.docs[j]
        hit = np.array([t in doc for t in qt])
        cov[k] = float(w[hit].sum() / w.sum())
        lacking = [profile.idf.get(t, profile.max_idf) for t in words if t not in doc]
        miss[k] = max(lacking) if lacking else 0.0
    novel = [_rarity(t) for t in words if t not in profile.idf]
    return cov, miss, (max(novel) if novel else 0.0), len(novel) / max(1, len(words))


def _share_above(ref: np.ndarray, value: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.searchsorted(np.sort(ref), value) / max(1, len(ref))
    return out


def _precision_above(ref_value: np.ndarray, ref_right: np.ndarray,
                     value: np.ndarray) -> np.ndarray:
    """Smoothed share of reference questions scoring at least ``value`` whose best was right."""
    order = np.argsort(-ref_value)
    ranked = ref_value[order]
    right = np.cumsum(ref_right[order])
    k = np.searchsorted(-ranked, -value, side="right")
    hits = np.where(k > 0, right[np.maximum(k - 1, 0)], 0.0)
    out: np.ndarray = (hits + 1.0) / (k + 2.0)
    return out


@dataclass
class Ranked:
    """A batch of queries ranked: logits, probabilities and the order of the live entries."""

    logits: np.ndarray
    probs: np.ndarray
    order: np.ndarray  # (queries, entries) best first

    @classmethod
    def of(cls, ranker: Ranker, s: Signals) -> Ranked:
        """Rank every entry of every query."""
        logits = ranker.logits(s)
        return cls(logits, Ranker.softmax(logits), np.argsort(-logits, axis=1, kind="stable"))


Coverage = Callable[[int, Sequence[int]], tuple[np.ndarray, np.ndarray, float, float]]


def features(
    s: Signals, ranked: Ranked, profile: Profile, *, raw_texts: Sequence[str] | None = None,
    cover: Coverage | None = None,
) -> np.ndarray:
    """``(queries, FEATURES)``: what the confidence model reads (NaN where undefined).

    ``cover(query, entries)`` gives `coverage` for one query (by position) and some entries;
    by default it is computed here (the benchmark passes precomputed values).
    """
    if cover is None:
        def cover(i: int, entries: Sequence[int]) -> tuple[np.ndarray, np.ndarray, float, float]:
            return coverage(s.texts[i], profile, entries)

    q = len(s)
    r = np.arange(q)
    order = ranked.order
    n_live = s.live.sum(axis=1)
    top = order[:, 0] if order.shape[1] else np.zeros(q, dtype=np.int64)

    def at(k: int) -> np.ndarray:
        return order[:, min(k, order.shape[1] - 1)] if order.shape[1] else top

    z = ranked.logits
    z1 = z[r, top]
    z2 = np.where(n_live > 1, z[r, at(1)], z1 - 10.0)
    z3 = np.where(n_live > 2, z[r, at(2)], z2 - 10.0)
    p1 = ranked.probs[r, top]

    def of_top(a: np.ndarray) -> np.ndarray:
        out: np.ndarray = a[r, top]
        return out

    def best(a: np.ndarray, empty: float) -> np.ndarray:
        if not a.shape[1]:
            filled: np.ndarray = np.full(q, empty)
            return filled
        out: np.ndarray = np.where(s.live, a, empty).max(axis=1)
        return out

    def agrees(a: np.ndarray) -> np.ndarray:
        same: np.ndarray = (np.where(s.live, a, -9.0).argmax(axis=1) == top).astype(float)
        return same

    dense, second = of_top(s.dense), of_top(s.second)
    crowd_d, crowd_s = profile.crowd_dense[top], profile.crowd_second[top]
    counts = profile.texts_per_entry
    cov_rows = []
    for i in range(q):
        pick = list(order[i, :_TOP][s.live[i, order[i, :_TOP]]]) if order.shape[1] else []
        if not pick:
            cov_rows.append((0.0, 0.0, 0.0, 0.0, 0.0))
            continue
        cov, miss, novel, novel_share = cover(i, pick)
        cov_rows.append((cov[0], miss[0], novel, novel_share, float(cov.max() - cov[0])))
    cov_a = np.array(cov_rows).reshape(q, 5)
    texts = raw_texts if raw_texts is not None else s.texts
    head = s.head
    columns = [
        z1, z1 - z2, z2 - z3, p1, dense, second, of_top(s.lexical), of_top(s.answer),
        best(s.dense, -1.0) - dense, best(s.second, -1.0) - second,
        agrees(s.dense), agrees(s.second), agrees(s.lexical), crowd_d, crowd_s,
        np.log(counts[top]), np.full(q, math.log(float(counts.mean()) if len(counts) else 1.0)),
        np.log(np.maximum(n_live, 1)),
        _share_above(profile.pool_z1, z1), _share_above(profile.pool_dense, dense),
        _share_above(profile.pool_second, second),
        z1 - profile.q90(profile.pool_z1), dense - profile.q90(profile.pool_dense),
        second - profile.q90(profile.pool_second), dense - crowd_d, second - crowd_s,
        cov_a[:, 0], cov_a[:, 1], cov_a[:, 2], cov_a[:, 3], cov_a[:, 4],
        np.array([1.0 if _ORDER_NUMBER.search(t) else 0.0 for t in texts]),
        of_top(head), best(head, 0.0), agrees(head),
    ]
    if profile.has_loo:
        columns += [_precision_above(profile.loo_p1, profile.loo_right, p1),
                    _precision_above(profile.loo_head, profile.loo_right, of_top(head))]
    else:
        columns += [np.full(q, np.nan), np.full(q, np.nan)]
    return np.column_stack(columns) if q else np.zeros((0, len(FEATURES)))


# ---- tree ensembles ------------------------------------------------------------------------------


class TreeEnsemble:
    """A boosted tree ensemble's raw score, evaluated with numpy (exported from scikit-learn).

    All trees' nodes sit in flat arrays; each step moves every (query, tree) pair one level down,
    so a question costs a dozen vector operations however many trees there are.
    """

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.baseline = float(spec["baseline"])
        self.feature = np.asarray(spec["feature"], dtype=np.int64)
        self.threshold = np.asarray(spec["threshold"], dtype=np.float64)
        self.left = np.asarray(spec["left"], dtype=np.int64)
        self.right = np.asarray(spec["right"], dtype=np.int64)
        self.missing_left = np.asarray(spec["missing_left"], dtype=bool)
        self.leaf = np.asarray(spec["leaf"], dtype=bool)
        self.value = np.asarray(spec["value"], dtype=np.float64)
        self.roots = np.asarray(spec["roots"], dtype=np.int64)
        self.depth = int(spec["depth"])

    def raw(self, x: np.ndarray) -> np.ndarray:
        """The ensemble's log-odds for each row of ``x``."""
        node = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()
        rows = np.arange(len(x))[:, None]
        for _ in range(self.depth):
            value = x[rows, self.feature[node]]
            go_left = np.where(np.isnan(value), self.missing_left[node],
                               value <= self.threshold[node])
            nxt = np.where(go_left, self.left[node], self.right[node])
            node = np.where(self.leaf[node], node, nxt)
        out: np.ndarray = self.baseline + self.value[node].sum(axis=1)
        return out

    def p(self, x: np.ndarray) -> np.ndarray:
        """Probabilities."""
        out: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(self.raw(x), -60.0, 60.0)))
        return out

    @staticmethod
    def export(model: Any) -> dict[str, Any]:
        """The spec of a fitted binary ``HistGradientBoostingClassifier``."""
        feature: list[int] = []
        threshold: list[float] = []
        left: list[int] = []
        right: list[int] = []
        missing: list[bool] = []
        leaf: list[bool] = []
        value: list[float] = []
        roots: list[int] = []
        depth = 0
        for (predictor,) in model._predictors:
            nodes = predictor.nodes
            offset = len(feature)
            roots.append(offset)
            depth = max(depth, int(nodes["depth"].max()))
            for n in nodes:
                feature.append(int(n["feature_idx"]))
                threshold.append(float(n["num_threshold"]))
                left.append(int(n["left"]) + offset)
                right.append(int(n["right"]) + offset)
                missing.append(bool(n["missing_go_to_left"]))
                leaf.append(bool(n["is_leaf"]))
                value.append(float(n["value"]) if n["is_leaf"] else 0.0)
        return {"baseline": float(np.ravel(model._baseline_prediction)[0]), "feature": feature,
                "threshold": threshold, "left": left, "right": right, "missing_left": missing,
                "leaf": leaf, "value": value, "roots": roots, "depth": depth}


@dataclass(frozen=True)
class DecisionModel:
    """The ranker and the two confidence ensembles, as shipped; see the module doc."""

    ranker: Ranker
    p_top: TreeEnsemble
    p_in3: TreeEnsemble
    answer: float  # answer when p_top reaches this
    clarify: float  # else clarify when p_in3 reaches this
    meta: dict[str, Any]

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> DecisionModel:
        """Build from the JSON document (``features`` must match `FEATURES`)."""
        if tuple(spec["features"]) != FEATURES:
            raise ValueError("decision model was fitted on other features; refit it "
                             "(benchmarks/generalisation.py fit)")
        policy = spec["policy"]
        return cls(Ranker(spec["ranker"]), TreeEnsemble(spec["p_top"]),
                   TreeEnsemble(spec["p_in3"]), float(policy["answer"]),
                   float(policy["clarify"]), dict(spec.get("meta", {})))


@lru_cache(maxsize=4)
def load_model(path: Path = MODEL_PATH) -> DecisionModel:
    """The shipped decision model (read once per process)."""
    return DecisionModel.from_spec(json.loads(path.read_text(encoding="utf-8")))
