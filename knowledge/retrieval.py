"""Retrieval: every live entry's signals for a question, as arrays the ranker and confidence read.

Every question and variant of every entry is a *row*. A query is compared with all rows and all
entries at once (numpy; a knowledge base of 15 000 rows costs a few milliseconds), giving one
``(queries, entries)`` array per signal:

- ``dense`` / ``second``: best cosine between the query and the entry's rows under the primary
  encoder (multilingual e5) and the second one (USE; e5 again when there is none);
- ``cent_dense`` / ``cent_second``: cosine with the mean of the entry's row vectors (many
  variants make a better prototype than any one of them);
- ``lexical``: best normalised BM25 of the entry's rows (`knowledge.lexical`);
- ``answer``: cosine between the query and the entry's answer text (primary encoder);
- ``code``: product codes of the query and the entry agree 1, clash -1, else 0;
- ``head``: the probability the knowledge base's own classifier (`knowledge.head`, fitted on its
  rows at publish time) gives the entry, renormalised over the live entries;
- ``canonical``: 1 for an entry with a single text (a plain Q&A sheet row), else 0.

Time: an entry is live when ``at`` lies in its window. Campaign precedence: a live campaign
entry hides its live evergreen *twin* — the evergreen entry on the same topic (`find_twins`):
mutual nearest neighbours by the mean of their row vectors, same category, similar enough.
Nothing else is lifted: a campaign entry competes with unrelated entries on its own signals, so
a live campaign cannot steal their questions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np

from knowledge.lexical import BM25
from knowledge.models import Entry
from knowledge.text import codes_agree, for_matching, model_numbers, tokens

logger = logging.getLogger(__name__)

_CHUNK = 256  # queries compared with every row at once (bounds the (queries, rows) arrays)
TWIN_SIMILARITY = 0.82  # default of KnowledgeSettings.twin_similarity


class Encoder(Protocol):
    """What retrieval needs of an encoder (`knowledge.encoders.embedding.Encoder` satisfies it)."""

    @property
    def name(self) -> str:
        """A stable identifier of the model (cache keys include it)."""
        ...

    @property
    def dim(self) -> int:
        """Vector size."""
        ...

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32, L2-normalised."""
        ...


class Head(Protocol):
    """A classifier over the entries (`knowledge.head.EntryHead` satisfies it)."""

    def proba(self, primary: np.ndarray, second: np.ndarray) -> np.ndarray:
        """``(queries, entries)`` probabilities from the queries' two vectors."""
        ...


QueryVectors = Mapping[str, np.ndarray]  # encoder name -> one query's vector


@dataclass
class Signals:
    """Every signal of every entry for a batch of queries; ``live`` masks what may answer."""

    dense: np.ndarray
    second: np.ndarray
    cent_dense: np.ndarray
    cent_second: np.ndarray
    lexical: np.ndarray
    answer: np.ndarray
    code: np.ndarray
    head: np.ndarray
    canonical: np.ndarray  # (entries,)
    live: np.ndarray  # bool (queries, entries): active at the query's time, not hidden by a twin
    best_row: np.ndarray  # (queries, entries): the row reaching ``dense``
    texts: list[str] = field(default_factory=list)  # the queries as matched (normalised)

    def __len__(self) -> int:
        return len(self.texts)

    @staticmethod
    def concat(parts: Sequence[Signals]) -> Signals:
        """The signals of several batches of queries, in order."""
        joined = {name: np.concatenate([getattr(p, name) for p in parts]) for name in _PER_QUERY}
        return Signals(canonical=parts[0].canonical, texts=[t for p in parts for t in p.texts],
                       **joined)

    def take(self, rows: Sequence[int] | np.ndarray) -> Signals:
        """The signals of some of the queries."""
        rows = np.asarray(rows, dtype=np.int64)
        pick = {name: getattr(self, name)[rows] for name in _PER_QUERY}
        return Signals(canonical=self.canonical, texts=[self.texts[i] for i in rows], **pick)


_PER_QUERY = ("dense", "second", "cent_dense", "cent_second", "lexical", "answer", "code", "head",
              "live", "best_row")


def encode_cached(
    encoder: Encoder,
    texts: Sequence[str],
    known: Mapping[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Vectors of ``texts``, encoding only those missing from ``known``.

    Returns:
        The ``(len(texts), dim)`` matrix and the vectors that had to be computed, by text, for the
        caller to cache.
    """
    known = known or {}
    missing = list(dict.fromkeys(t for t in texts if t not in known))
    fresh: dict[str, np.ndarray] = {}
    if missing:
        computed = np.asarray(encoder.encode(missing), dtype=np.float32)
        fresh = {t: computed[i] for i, t in enumerate(missing)}
    matrix = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    for i, text in enumerate(texts):
        matrix[i] = fresh[text] if text in fresh else known[text]
    return matrix, fresh


def query_form(text: str) -> str:
    """The text the encoders and the lexical signal see for a query (emoji-only: kept as is)."""
    return for_matching(text) or text


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    out: np.ndarray = (matrix / np.maximum(norms, 1e-12)).astype(np.float32)
    return out


class Retriever:
    """The indexes of one knowledge base and the signals of its entries; see the module doc."""

    def __init__(
        self,
        entries: Sequence[Entry],
        rows: Sequence[str],
        row_entry: np.ndarray,
        originals: Sequence[str],
        primary: tuple[Encoder, np.ndarray],
        second: tuple[Encoder, np.ndarray] | None,
        answers: np.ndarray,
        *,
        new_vectors: dict[str, dict[str, np.ndarray]],
        head: Head | None = None,
        twin_similarity: float = TWIN_SIMILARITY,
    ) -> None:
        self.entries = tuple(entries)
        self.rows = list(rows)
        self.row_entry = row_entry
        self.originals = list(originals)  # each row's text as written
        self.starts = np.searchsorted(row_entry, np.arange(len(self.entries) + 1))
        self._primary_encoder, self.primary_rows = primary
        self._second_encoder: Encoder | None = second[0] if second is not None else None
        self.second_rows: np.ndarray | None = second[1] if second is not None else None
        self.answers = answers
        self.new_vectors = new_vectors
        self.head = head
        self._lexical = BM25(self.rows)
        self._sum_primary = self._entry_sums(self.primary_rows)
        self._sum_second = self._entry_sums(self.second_rows) if self.has_second else None
        self.canonical = (np.diff(self.starts) <= 1).astype(np.float64)
        self._codes = [model_numbers(e.answer).union(*(model_numbers(t) for t in e.texts))
                       for e in self.entries]
        self._index_of = {e.id: i for i, e in enumerate(self.entries)}
        self.twins = find_twins(self.entries, self.centroids("primary"), self.centroids("second"),
                                twin_similarity)
        self._tokens: list[frozenset[str]] | None = None

    @classmethod
    def build(
        cls,
        entries: Sequence[Entry],
        encoder: Encoder,
        second: Encoder | None = None,
        *,
        vectors: Mapping[str, Mapping[str, np.ndarray]] | None = None,
        twin_similarity: float = TWIN_SIMILARITY,
    ) -> Retriever:
        """Index ``entries`` with ``encoder`` (and ``second``).

        Args:
            entries: The knowledge base's entries (all of them; time filtering happens per query).
            encoder: The primary encoder (multilingual e5).
            second: The second encoder (USE); without it e5 stands in for its signals.
            vectors: Precomputed vectors by encoder name, then by text as returned by
                `Retriever.texts_of` (the service's embedding cache). Missing ones are encoded and
                left in ``new_vectors`` for the caller to cache.
            twin_similarity: Mean-vector cosine at which mutual nearest campaign and evergreen
                entries of one category are twins (`find_twins`).
        """
        vectors = vectors or {}
        row_entry: list[int] = []
        rows: list[str] = []
        originals: list[str] = []
        for i, entry in enumerate(entries):
            seen: set[str] = set()
            for original in entry.texts:
                text = query_form(original)
                if text not in seen:
                    seen.add(text)
                    row_entry.append(i)
                    rows.append(text)
                    originals.append(original)
        answer_texts = [for_matching(e.answer) for e in entries]
        new: dict[str, dict[str, np.ndarray]] = {}
        primary_rows, fresh = encode_cached(encoder, rows + answer_texts,
                                            vectors.get(encoder.name))
        new[encoder.name] = fresh
        second_pair = None
        if second is not None:
            second_rows, fresh2 = encode_cached(second, rows, vectors.get(second.name))
            new.setdefault(second.name, {}).update(fresh2)
            second_pair = (second, second_rows)
        n = len(rows)
        return cls(entries, rows, np.asarray(row_entry, dtype=np.int64), originals,
                   (encoder, primary_rows[:n]), second_pair, primary_rows[n:], new_vectors=new,
                   twin_similarity=twin_similarity)

    @staticmethod
    def texts_of(entries: Sequence[Entry]) -> list[str]:
        """Every text `build` embeds with the primary encoder (the second embeds rows only)."""
        texts = [query_form(t) for e in entries for t in e.texts]
        texts += [for_matching(e.answer) for e in entries]
        return list(dict.fromkeys(texts))

    def with_head(self, head: Head | None) -> Retriever:
        """The same indexes with a classifier head (calibration fits one per knowledge base)."""
        clone = object.__new__(Retriever)
        clone.__dict__.update(self.__dict__)
        clone.head = head
        return clone

    @property
    def has_second(self) -> bool:
        """Whether the second encoder contributes its own signals."""
        return self._second_encoder is not None

    @property
    def encoders(self) -> list[Encoder]:
        """The encoders queries are embedded with, primary first."""
        return [e for e in (self._primary_encoder, self._second_encoder) if e is not None]

    def index_of(self, entry_id: str) -> int | None:
        """The position of an entry in `entries`."""
        return self._index_of.get(entry_id)

    def centroids(self, which: str) -> np.ndarray:
        """Unit mean vector of each entry's rows (``which``: ``primary`` or ``second``)."""
        if which == "second" and self._sum_second is not None:
            return _unit_rows(self._sum_second)
        return _unit_rows(self._sum_primary)

    def _entry_sums(self, matrix: np.ndarray | None) -> np.ndarray:
        assert matrix is not None
        if not len(matrix):
            return np.zeros((len(self.entries), matrix.shape[1]), dtype=np.float32)
        out: np.ndarray = np.add.reduceat(matrix, self.starts[:-1], axis=0)
        out[np.diff(self.starts) == 0] = 0.0
        return out

    # ---- queries ---------------------------------------------------------------------------

    def encode_queries(self, texts: Sequence[str]) -> list[dict[str, np.ndarray]]:
        """Each query's vectors by encoder name, one batch per encoder."""
        queries = [query_form(t) for t in texts]
        matrices = {e.name: e.encode(queries) for e in self.encoders}
        return [{name: m[i] for name, m in matrices.items()} for i in range(len(queries))]

    def prefetch_query(self, text: str) -> None:
        """Start embedding ``text`` as `signals` will, without waiting (batching encoders only)."""
        query = query_form(query_form(text))
        for encoder in self.encoders:
            prefetch = getattr(encoder, "prefetch", None)
            if prefetch is not None:
                prefetch([query])

    def live(self, ats: Sequence[datetime | None]) -> tuple[np.ndarray, list[tuple[int, int,
                                                                                 np.ndarray]]]:
        """Which entries may answer at each time, and which campaign entry stands for which twin.

        Returns:
            ``(queries, entries)``: active at the query's time and not hidden by a live campaign
            twin; and every (campaign, evergreen, queries) where the first hides the second.
        """
        active = np.ones((len(ats), len(self.entries)), dtype=bool)
        for i, at in enumerate(ats):
            if at is not None:
                active[i] = [e.active_at(at) for e in self.entries]
        live = active.copy()
        standing: list[tuple[int, int, np.ndarray]] = []
        timed = np.array([at is not None for at in ats], dtype=bool)
        for campaign, evergreen in self.twins.items():
            for e in evergreen:
                hides = timed & active[:, campaign] & active[:, e]
                if hides.any():
                    live[hides, e] = False
                    standing.append((campaign, e, hides))
        return live, standing

    def signals(
        self,
        texts: Sequence[str],
        ats: Sequence[datetime | None],
        *,
        query_vectors: Sequence[QueryVectors] | None = None,
        exclude_rows: Sequence[int] | None = None,
    ) -> Signals:
        """The signals of every entry for each query (see the module doc).

        Args:
            texts: The questions (raw or normalised; normalised here).
            ats: Each question's "as of" time; ``None`` ignores windows and twins.
            query_vectors: The queries' vectors, when the caller has them (else embedded here).
            exclude_rows: Per query, one row left out of the index (calibration asks each
                question or variant against the rest of its entry), or -1.
        """
        queries = [query_form(t) for t in texts]
        if query_vectors is None:
            query_vectors = self.encode_queries(queries)
        excluded = list(exclude_rows) if exclude_rows is not None else [-1] * len(queries)
        if len(queries) <= _CHUNK:
            return self._signals(queries, list(ats), list(query_vectors), excluded)
        parts = [self._signals(queries[i:i + _CHUNK], list(ats[i:i + _CHUNK]),
                               list(query_vectors[i:i + _CHUNK]), excluded[i:i + _CHUNK])
                 for i in range(0, len(queries), _CHUNK)]
        return Signals.concat(parts)

    def _signals(self, queries: list[str], ats: list[datetime | None],
                 query_vectors: list[QueryVectors], exclude_rows: list[int]) -> Signals:
        q1 = _stack(query_vectors, self._primary_encoder.name, self.primary_rows.shape[1])
        q2 = q1
        if self.has_second:
            assert self._second_encoder is not None and self.second_rows is not None
            q2 = _stack(query_vectors, self._second_encoder.name, self.second_rows.shape[1])
        excluded = np.asarray(exclude_rows, dtype=np.int64)
        dense_rows = q1 @ self.primary_rows.T
        second_rows = q2 @ self.second_rows.T if self.second_rows is not None else dense_rows
        lexical_rows = np.stack([self._lexical.scores(q) for q in queries]) if queries else (
            np.zeros((0, len(self.rows))))
        hit = np.nonzero(excluded >= 0)[0]
        for m, fill in ((dense_rows, -1.0), (second_rows, -1.0), (lexical_rows, 0.0)):
            if len(hit) and m is not None:
                m[hit, excluded[hit]] = fill
        cent_dense = self._centroid_scores(q1, self._sum_primary, self.primary_rows, excluded)
        if self.has_second:
            assert self._sum_second is not None and self.second_rows is not None
            cent_second = self._centroid_scores(q2, self._sum_second, self.second_rows, excluded)
        else:
            cent_second = cent_dense
        head = (self.head.proba(q1, q2) if self.head is not None
                else np.zeros((len(queries), len(self.entries))))
        live, standing = self.live(ats)
        dense = self._entry_max(dense_rows, -1.0)
        out = Signals(
            dense=dense,
            second=self._entry_max(second_rows, -1.0),
            cent_dense=cent_dense,
            cent_second=cent_second,
            lexical=self._entry_max(lexical_rows, 0.0),
            answer=(q1 @ self.answers.T).astype(np.float64),
            code=self._code_signal(queries),
            head=head,
            canonical=self.canonical,
            live=live,
            best_row=self._best_rows(dense_rows, dense),
            texts=queries,
        )
        for campaign, evergreen, rows in standing:
            _stand_for(out, campaign, evergreen, rows)
        out.head = _renormalised(out.head, live)
        return out

    def _best_rows(self, rows: np.ndarray, best: np.ndarray) -> np.ndarray:
        """Per query and entry, the first row reaching the entry's best score (-1: no rows)."""
        n_rows = rows.shape[1]
        if not n_rows:
            return np.full(best.shape, -1, dtype=np.int64)
        hits = rows >= best[:, self.row_entry] - 1e-9
        first = np.where(hits, np.arange(n_rows), n_rows)
        out: np.ndarray = np.minimum.reduceat(first, self.starts[:-1], axis=1)
        out[out >= n_rows] = -1
        return out.astype(np.int64)

    def matched(self, s: Signals, query: int, entry: int) -> str:
        """The question or variant (as written) that matched ``entry`` best for a query."""
        row = int(s.best_row[query, entry])
        return self.originals[row] if row >= 0 else self.entries[entry].question

    def _entry_max(self, matrix: np.ndarray, empty: float) -> np.ndarray:
        if not matrix.shape[1]:
            return np.full((matrix.shape[0], len(self.entries)), empty)
        out: np.ndarray = np.maximum.reduceat(matrix, self.starts[:-1], axis=1).astype(np.float64)
        out[:, np.diff(self.starts) == 0] = empty
        return out

    def _centroid_scores(self, q: np.ndarray, sums: np.ndarray, rows: np.ndarray,
                         excluded: np.ndarray) -> np.ndarray:
        """Cosine with each entry's mean vector, the excluded row left out of its own entry."""
        out: np.ndarray = (q @ _unit_rows(sums).T).astype(np.float64)
        for i in np.nonzero(excluded >= 0)[0]:
            r = int(excluded[i])
            own = int(self.row_entry[r])
            rest = sums[own] - rows[r]
            norm = float(np.linalg.norm(rest))
            out[i, own] = float(q[i] @ rest) / norm if norm > 1e-6 else -1.0
        return out

    def _code_signal(self, queries: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(queries), len(self.entries)))
        for i, query in enumerate(queries):
            codes = model_numbers(query)
            if codes:
                out[i] = [codes_agree(codes, c) for c in self._codes]
        return out

    def entry_tokens(self) -> list[frozenset[str]]:
        """Lexical tokens of each entry's texts and answer (the ``coverage`` features read them)."""
        if self._tokens is None:
            self._tokens = [frozenset(t for text in (*e.texts, e.answer) for t in tokens(text))
                            for e in self.entries]
        return self._tokens

    @property
    def lexical(self) -> BM25:
        """The lexical index over the rows."""
        return self._lexical


def _stand_for(s: Signals, campaign: int, evergreen: int, rows: np.ndarray) -> None:
    """While it hides its twin, a campaign entry matches what either of them matches.

    Its question-side signals become the better of the two, and the head's probability for the
    twin counts for it: a question worded like the everyday entry finds the campaign's answer.
    """
    for name in ("dense", "second", "cent_dense", "cent_second", "lexical", "code"):
        values = getattr(s, name)
        values[rows, campaign] = np.maximum(values[rows, campaign], values[rows, evergreen])
    twin_better = s.dense[rows, evergreen] >= s.dense[rows, campaign]
    picked = np.nonzero(rows)[0][twin_better]
    s.best_row[picked, campaign] = s.best_row[picked, evergreen]
    s.head[rows, campaign] += s.head[rows, evergreen]


def _stack(vectors: Sequence[QueryVectors], name: str, dim: int) -> np.ndarray:
    if not vectors:
        return np.zeros((0, dim), dtype=np.float32)
    return np.stack([np.asarray(v[name], dtype=np.float32) for v in vectors])


def _renormalised(p: np.ndarray, live: np.ndarray) -> np.ndarray:
    masked = np.where(live, p, 0.0)
    out: np.ndarray = masked / np.maximum(masked.sum(axis=1, keepdims=True), 1e-12)
    return out


def find_twins(
    entries: Sequence[Entry], primary: np.ndarray, second: np.ndarray,
    similarity: float = TWIN_SIMILARITY,
) -> dict[int, frozenset[int]]:
    """Campaign entry index → its evergreen twin (at most one): the same topic in another season.

    A campaign entry C and an evergreen entry E are twins when each is the other's nearest by the
    mean of their rows' vectors (e5 and USE cosines averaged) — E's nearest among C's campaign, so
    every season has its own twin of E — they share a category and that cosine reaches
    ``similarity``. On the dev stores this pairs "双12价保"/"价保规则" and
    "618分期"/"分期免息" and leaves "双12尾款"/"花呗付款" (each other's nearest, 0.69) apart.
    """
    campaign = [i for i, e in enumerate(entries) if e.campaign is not None]
    evergreen = [i for i, e in enumerate(entries) if e.campaign is None]
    out: dict[int, frozenset[int]] = {c: frozenset() for c in campaign}
    if not campaign or not evergreen:
        return out
    sim = (primary @ primary.T + second @ second.T) / 2.0
    for c in campaign:
        e = max(evergreen, key=lambda j: sim[c, j])
        season = [j for j in campaign if entries[j].campaign == entries[c].campaign]
        back = max(season, key=lambda j: sim[j, e])
        if back == c and entries[c].category == entries[e].category and sim[c, e] >= similarity:
            out[c] = frozenset({e})
    return out
