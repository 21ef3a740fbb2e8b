"""Lexical signal: BM25 over the tokens of each question and variant, normalised to [0, 1].

Dense encoders blur exact identifiers: ``JSQ30-S3`` and ``JSQ50-S3`` embed almost alike, and a two-
character Chinese query (``运费``) gives a weak, noisy vector. Token overlap catches both. Each
question or variant is its own short document (one entry's texts are not concatenated, so a long
list of variants neither dilutes nor inflates an entry) and an entry scores the best of its texts.

The raw BM25 score is divided by the query's own *IDF mass*: the sum, over the query's tokens, of
each token's IDF, where a token that no document contains gets the largest IDF of the collection. A
query whose every informative token matches a short document scores about 1; a query made of words
the knowledge base has never seen (``今天天气怎么样`` in a shoe shop) scores about 0, however
its one common word happens to match.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from knowledge.text import tokens as tokenize


class BM25:
    """Okapi BM25 over a fixed list of documents, with scores normalised to [0, 1].

    Args:
        documents: The documents' texts; a document's row index is its id.
        k1: Term-frequency saturation.
        b: Length normalisation strength.
    """

    def __init__(self, documents: Sequence[str], *, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self._docs = [Counter(tokenize(d)) for d in documents]
        self._lengths = np.array([sum(c.values()) for c in self._docs], dtype=np.float64)
        n = len(self._docs)
        self._avg_length = float(self._lengths.mean()) if n and self._lengths.sum() else 1.0
        df: Counter[str] = Counter()
        for doc in self._docs:
            df.update(doc.keys())
        self._idf = {t: self._idf_of(f, n) for t, f in df.items()}
        self._max_idf = self._idf_of(0, n)
        postings: dict[str, list[tuple[int, int]]] = {}
        for row, doc in enumerate(self._docs):
            for token, tf in doc.items():
                postings.setdefault(token, []).append((row, tf))
        self._norm = self.k1 * (1.0 - self.b + self.b * self._lengths / self._avg_length)
        # per token: its documents and, precomputed, each one's BM25 term weight
        self._postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for token, hits in postings.items():
            rows = np.array([r for r, _ in hits], dtype=np.int64)
            tfs = np.array([f for _, f in hits], dtype=np.float64)
            weight = self._idf[token] * tfs * (self.k1 + 1.0) / (tfs + self._norm[rows])
            self._postings[token] = (rows, weight)

    @staticmethod
    def _idf_of(df: int, n: int) -> float:
        return math.log(1.0 + (n - df + 0.5) / (df + 0.5))

    def __len__(self) -> int:
        return len(self._docs)

    def idf(self, token: str) -> float:
        """The token's IDF; an unseen token gets the largest IDF possible in this collection."""
        return self._idf.get(token, self._max_idf)

    def scores(self, query: str) -> np.ndarray:
        """Normalised BM25 of ``query`` against every document: ``(len(self),)`` in [0, 1]."""
        out = np.zeros(len(self._docs), dtype=np.float64)
        query_tokens = set(tokenize(query))
        mass = sum(self.idf(t) for t in query_tokens)
        if not query_tokens or mass <= 0.0:
            return out.astype(np.float32)
        for token in query_tokens:
            found = self._postings.get(token)
            if found is not None:
                out[found[0]] += found[1]
        return np.clip(out / mass, 0.0, 1.0).astype(np.float32)
