"""Ranking: one score per live entry from its signals, the same weights for every knowledge base.

``logit(entry) = Σ weights[f] · feature[f]`` over `ENTRY_FEATURES`; a softmax over the live entries
turns the logits into ``Candidate.score``, the share of the question's probability mass the entry
holds. The weights are *not* fitted per knowledge base: they are fitted once, on many knowledge
bases at a time, listwise (the right entry against all the others of its question), and ship in
``data/decision_model.json`` (`knowledge.confidence.DecisionModel`). Per knowledge base the fit
varied by less than 0.1 in every weight across leave-one-family-out folds
(benchmarks/results/generalisation.md), so one set of weights serves stores it never saw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from knowledge.retrieval import Signals

ENTRY_FEATURES = (
    "dense", "second", "lexical", "answer", "code", "cent_dense", "cent_second",
    "canonical_answer", "canonical_dense", "head_logp",
)
_MASKED = -1e9


def entry_features(s: Signals) -> np.ndarray:
    """``(queries, entries, features)`` in `ENTRY_FEATURES` order.

    The answer and dense signals count again, separately, for entries with a single text: on a
    plain Q&A sheet the answer says much more about the entry than on a store with variants.
    """
    canonical = s.canonical[None, :]
    head_logp = np.log(np.maximum(s.head, 1e-6)) / 10.0
    columns = (s.dense, s.second, s.lexical, s.answer, s.code, s.cent_dense, s.cent_second,
               canonical * s.answer, canonical * s.dense, head_logp)
    return np.stack([np.broadcast_to(c, s.dense.shape) for c in columns], axis=-1)


class Ranker:
    """Linear listwise scoring of entries; ``weights`` by feature name."""

    def __init__(self, weights: Mapping[str, float]) -> None:
        self.weights = dict(weights)
        self._w = np.array([self.weights.get(f, 0.0) for f in ENTRY_FEATURES])

    def logits(self, s: Signals) -> np.ndarray:
        """``(queries, entries)`` logits; entries not live get a very low one."""
        z: np.ndarray = entry_features(s) @ self._w
        return np.where(s.live, z, _MASKED)

    @staticmethod
    def softmax(logits: np.ndarray) -> np.ndarray:
        """Probabilities over the live entries of each query (rows of all-masked: zeros)."""
        m = logits.max(axis=1, keepdims=True)
        e = np.where(logits > _MASKED / 2, np.exp(logits - m), 0.0)
        out: np.ndarray = e / np.maximum(e.sum(axis=1, keepdims=True), 1e-300)
        return out

    @classmethod
    def fit(cls, batches: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
            l2: float = 1e-3) -> Ranker:
        """Listwise fit on batches of (features (q, n, f), live (q, n), right entry (q,); -1: none).

        Every batch (one knowledge base) counts the same, whatever its number of questions.
        """
        from scipy.optimize import minimize

        usable = [(x[y >= 0], live[y >= 0], y[y >= 0]) for x, live, y in batches
                  if (y >= 0).any()]
        f = len(ENTRY_FEATURES)

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            total, grad = 0.0, np.zeros(f)
            for x, live, y in usable:
                z = np.where(live, x @ w, _MASKED)
                m = z.max(axis=1, keepdims=True)
                e = np.where(live, np.exp(z - m), 0.0)
                s = e.sum(axis=1, keepdims=True)
                p = e / s
                r = np.arange(len(y))
                total -= float((z[r, y] - m[:, 0] - np.log(s[:, 0])).mean())
                grad -= (x[r, y] - np.einsum("qn,qnf->qf", p, x)).mean(axis=0)
            n = max(1, len(usable))
            return total / n + l2 * float(w @ w), grad / n + 2 * l2 * w

        result = minimize(loss, np.ones(f), jac=True, method="L-BFGS-B")
        return cls({name: round(float(v), 6) for name, v in zip(ENTRY_FEATURES, result.x,
                                                                 strict=True)})
