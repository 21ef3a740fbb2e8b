"""Retrieval: the entries that could answer a question, with a combined score and its signals.

Every question and variant of every entry is a row of a FAISS inner-product index (vectors are
L2-normalised, so inner product is cosine). A query gathers a pool of entries from the best rows of
each index and from the lexical index, then every pooled entry gets its signals computed exactly:

- ``dense``: best cosine between the query and the entry's texts under the primary encoder (e5);
- ``second``: the same under the second encoder (USE), when one is given;
- ``lexical``: best normalised BM25 between the query and the entry's texts (`knowledge.lexical`);
- ``answer``: cosine between the query and the entry's answer text (primary encoder);
- ``code``: whether the product codes named by the query and by the entry (texts and answer) agree:
  1, disagree: -1, or either names none: 0 (`knowledge.text.codes_agree`);
- ``intent``: Rasa's intent confidence when its intent is a question intent, ``0`` otherwise
  (recorded, and scored only if a scorer gives it a weight).

A `Scorer` (a logistic model over the signals, fitted per knowledge base by
`knowledge.calibration.calibrate`) turns them into ``Candidate.score`` in [0, 1]: the estimated
probability that the entry is the right answer. Thresholds live in `knowledge.decision`.

Time: only entries active at ``at`` are considered. Campaign precedence: inside its window a
campaign entry *shadows* the evergreen (``campaign is None``) entries on the same topic: a shadowed
entry is dropped from the candidates and the campaign entry takes its place with at least its score
(no clarification between two versions of one answer). A campaign entry C and an evergreen entry E
are on the same topic when

(a) they are twins: same category and some text of C and some text of E are near-duplicates
    (primary-encoder cosine ≥ ``topic_similarity``, 0.93: on the demo store this pairs
    ``d11-price-protection``/``price-protection``, ``cny-shipping``/``dispatch-time``,
    ``cny-returns``/``return-7day``… and no unrelated pair of one category); or
(b) for this very question E ranks above C but C matches it almost as well: the gap between their
    ``dense`` signals is at most ``campaign_margin`` (0.03 in cosine).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import faiss
import numpy as np
from pydantic import BaseModel, ConfigDict

from knowledge.lexical import BM25
from knowledge.models import Candidate, Entry
from knowledge.text import codes_agree, for_matching, model_numbers

logger = logging.getLogger(__name__)

SIGNALS = ("dense", "second", "lexical", "answer", "code", "intent")
#: Rasa intents meaning "a question for the knowledge base" (their confidence is the intent signal).
QUESTION_INTENTS = frozenset(
    {"faq", "ask_question", "question", "product_question", "nlu_fallback"}
)
_POOL_ROWS = 40  # rows taken from each index per query before exact scoring
_POOL_LEXICAL = 20  # entries taken from the lexical index per query


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


class Scorer(BaseModel):
    """Logistic combination of signals into a score in [0, 1].

    ``score = sigmoid(bias + Σ weights[s] * signals[s])``; signals without a weight are recorded
    but not scored. `knowledge.calibration.calibrate` fits one per knowledge base;
    `DEFAULT_SCORER` is the dense- only fallback used before calibration.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    weights: dict[str, float]
    bias: float
    fitted_on: str = "default"  # how it was obtained, for the record

    def score(self, signals: Mapping[str, float]) -> float:
        """The combined score of one candidate's signals."""
        z = self.bias + sum(w * signals.get(name, 0.0) for name, w in self.weights.items())
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


#: Dense cosine alone, centred where multilingual-e5-small separates paraphrases from unrelated text
#: (~0.88) with a slope that maps 0.80 → 0.02 and 0.95 → 0.94. Only used before calibration.
DEFAULT_SCORER = Scorer(weights={"dense": 50.0}, bias=-44.0, fitted_on="default: dense only")


@dataclass(frozen=True)
class Scored:
    """An entry with its raw signals for one query (before or after scoring)."""

    entry: Entry
    matched: str
    signals: dict[str, float]
    score: float = 0.0


@dataclass
class _Index:
    """One encoder's vectors of every row, in a FAISS index and as a matrix for exact scoring."""

    encoder: Encoder
    matrix: np.ndarray
    faiss_index: faiss.IndexFlatIP = field(repr=False)

    @classmethod
    def of(cls, encoder: Encoder, matrix: np.ndarray) -> _Index:
        index = faiss.IndexFlatIP(matrix.shape[1])
        if len(matrix):
            index.add(matrix)
        return cls(encoder, matrix, index)

    def top_rows(self, query: np.ndarray, k: int, allowed: np.ndarray | None) -> np.ndarray:
        k = min(k, self.faiss_index.ntotal)
        if k == 0:
            return np.zeros(0, dtype=np.int64)
        params = None
        if allowed is not None:
            selector = faiss.IDSelectorBatch(allowed.astype(np.int64))
            params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]
        _, rows = self.faiss_index.search(query.reshape(1, -1), k, params=params)
        found: np.ndarray = rows[0][rows[0] >= 0]
        return found


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


class Retriever:
    """Scores the entries of one knowledge base against questions; see the module docstring."""

    def __init__(
        self,
        entries: Sequence[Entry],
        row_entry: np.ndarray,
        row_texts: Sequence[str],
        row_originals: Sequence[str],
        primary: _Index,
        second: _Index | None,
        answers: np.ndarray,
        *,
        scorer: Scorer,
        topic_similarity: float,
        campaign_margin: float,
        new_vectors: dict[str, dict[str, np.ndarray]],
    ) -> None:
        self.entries = tuple(entries)
        self._row_entry = row_entry
        self._row_texts = list(row_texts)
        self._row_originals = list(row_originals)
        self._primary = primary
        self._second = second
        self._answers = answers
        self._lexical = BM25(self._row_texts)
        self._row_codes = [model_numbers(t) for t in self._row_texts]
        self._answer_codes = [model_numbers(e.answer) for e in self.entries]
        self.scorer = scorer
        self.topic_similarity = topic_similarity
        self.campaign_margin = campaign_margin
        self.new_vectors = new_vectors
        self._starts = np.searchsorted(row_entry, np.arange(len(self.entries) + 1))
        self._index_of = {e.id: i for i, e in enumerate(self.entries)}
        self._shadows = self._find_shadows()

    @classmethod
    def build(
        cls,
        entries: Sequence[Entry],
        encoder: Encoder,
        second: Encoder | None = None,
        *,
        vectors: Mapping[str, Mapping[str, np.ndarray]] | None = None,
        scorer: Scorer | None = None,
        topic_similarity: float = 0.93,
        campaign_margin: float = 0.03,
    ) -> Retriever:
        """Index ``entries`` with ``encoder`` (and ``second``).

        Args:
            entries: The knowledge base's entries (all of them; time filtering happens per query).
            encoder: The primary encoder (multilingual e5).
            second: An optional second encoder (USE), adding the ``second`` signal.
            vectors: Precomputed vectors by encoder name, then by text as returned by
                `Retriever.texts_of` (the service's embedding cache). Missing ones are encoded and
                left in ``new_vectors`` for the caller to cache.
            scorer: How signals combine; `DEFAULT_SCORER` until calibrated.
            topic_similarity: Text cosine at or above which a campaign entry shadows an
                evergreen one.
            campaign_margin: Score gap within which an active campaign entry wins over an
                evergreen one for a given query.
        """
        vectors = vectors or {}
        row_entry: list[int] = []
        row_texts: list[str] = []
        row_originals: list[str] = []
        for i, entry in enumerate(entries):
            seen: set[str] = set()
            for original in entry.texts:
                text = for_matching(original) or original.strip() or original
                if text not in seen:
                    seen.add(text)
                    row_entry.append(i)
                    row_texts.append(text)
                    row_originals.append(original)
        answer_texts = [for_matching(e.answer) for e in entries]
        new: dict[str, dict[str, np.ndarray]] = {}
        primary_rows, fresh = encode_cached(
            encoder, row_texts + answer_texts, vectors.get(encoder.name)
        )
        new[encoder.name] = fresh
        second_index = None
        if second is not None:
            second_rows, fresh2 = encode_cached(second, row_texts, vectors.get(second.name))
            new.setdefault(second.name, {}).update(fresh2)
            second_index = _Index.of(second, second_rows)
        n = len(row_texts)
        return cls(
            entries,
            np.asarray(row_entry, dtype=np.int64),
            row_texts,
            row_originals,
            _Index.of(encoder, primary_rows[:n]),
            second_index,
            primary_rows[n:],
            scorer=scorer or DEFAULT_SCORER,
            topic_similarity=topic_similarity,
            campaign_margin=campaign_margin,
            new_vectors=new,
        )

    @staticmethod
    def texts_of(entries: Sequence[Entry]) -> list[str]:
        """Every text `build` embeds with the primary encoder (the second embeds questions only)."""
        texts = [for_matching(t) or t.strip() or t for e in entries for t in e.texts]
        texts += [for_matching(e.answer) for e in entries]
        return list(dict.fromkeys(texts))

    def with_scorer(self, scorer: Scorer) -> Retriever:
        """The same indexes scored by ``scorer`` (calibration swaps the scorer in)."""
        clone = object.__new__(Retriever)
        clone.__dict__.update(self.__dict__)
        clone.scorer = scorer
        return clone

    @property
    def shadows(self) -> Mapping[int, frozenset[int]]:
        """Campaign entry index → indexes of the evergreen entries it shadows (same topic)."""
        return self._shadows

    @property
    def has_second(self) -> bool:
        """Whether a second encoder contributes the ``second`` signal."""
        return self._second is not None

    def encode_query(self, text: str) -> dict[str, np.ndarray]:
        """The query's vectors by encoder name (what ``query_vectors`` of `search` takes)."""
        return self.encode_queries([text])[0]

    def encode_queries(self, texts: Sequence[str]) -> list[dict[str, np.ndarray]]:
        """`encode_query` for many texts, one batch per encoder."""
        queries = [_query_form(t) for t in texts]
        matrices = {ix.encoder.name: ix.encoder.encode(queries) for ix in self._indexes()}
        return [{name: m[i] for name, m in matrices.items()} for i in range(len(queries))]

    def prefetch_query(self, text: str) -> None:
        """Start embedding ``text`` exactly as `search` will, without waiting.

        Only encoders with a ``prefetch(texts)`` method (`BatchingEncoder`) start; others wait
        for `search`.
        """
        query = _query_form(_query_form(text))  # score_all's form, then encode_queries'
        for ix in self._indexes():
            prefetch = getattr(ix.encoder, "prefetch", None)
            if prefetch is not None:
                prefetch([query])

    def _indexes(self) -> list[_Index]:
        return [self._primary] + ([self._second] if self._second is not None else [])

    def search(
        self,
        text: str,
        *,
        at: datetime,
        k: int = 5,
        intent: str | None = None,
        intent_confidence: float | None = None,
        exclude_texts: Collection[str] = (),
        query_vectors: Mapping[str, np.ndarray] | None = None,
    ) -> list[Candidate]:
        """The ``k`` best entries active at ``at`` for ``text``, best first.

        Args:
            text: The shopper's question (raw; it is normalised here).
            at: The "as of" time: only entries active then are candidates.
            k: How many candidates to return.
            intent: Rasa's intent for the message, if known.
            intent_confidence: Rasa's confidence in ``intent``.
            exclude_texts: Question/variant texts to leave out of the index for this query
                (leave-one-out calibration); compared after normalisation.
            query_vectors: The query's vectors by encoder name, when the caller has them cached.
        """
        scored = self.score_all(
            text,
            at=at,
            intent=intent,
            intent_confidence=intent_confidence,
            exclude_texts=exclude_texts,
            query_vectors=query_vectors,
        )
        return [self._candidate(s) for s in scored[:k]]

    def score_all(
        self,
        text: str,
        *,
        at: datetime | None,
        intent: str | None = None,
        intent_confidence: float | None = None,
        exclude_texts: Collection[str] = (),
        query_vectors: Mapping[str, np.ndarray] | None = None,
    ) -> list[Scored]:
        """Every pooled entry with its signals and score, campaign precedence applied, best first.

        ``at=None`` ignores validity windows and campaign precedence (calibration looks at the
        whole knowledge base).
        """
        allowed = self._allowed_rows(at, exclude_texts)
        if allowed is not None and not len(allowed):
            return []
        query = _query_form(text)
        vecs = dict(query_vectors or {})
        if self._primary.encoder.name not in vecs or (
            self._second is not None and self._second.encoder.name not in vecs
        ):
            vecs = {**self.encode_query(query), **vecs}
        q1 = np.asarray(vecs[self._primary.encoder.name], dtype=np.float32)
        q2 = None
        if self._second is not None:
            q2 = np.asarray(vecs[self._second.encoder.name], dtype=np.float32)
        lexical = self._lexical.scores(query)
        row_mask = np.zeros(len(self._row_texts), dtype=bool)
        row_mask[allowed if allowed is not None else slice(None)] = True
        pool = self._pool(q1, q2, lexical, allowed, row_mask)
        intent_value = self._intent_value(intent, intent_confidence)
        codes = model_numbers(query)
        scored = self._score_entries(pool, q1, q2, lexical, row_mask, intent_value, codes)
        scored.sort(key=lambda s: s.score, reverse=True)
        return self._apply_campaigns(scored) if at is not None else scored

    # ---- internals -------------------------------------------------------------------------

    def _allowed_rows(
        self, at: datetime | None, exclude_texts: Collection[str]
    ) -> np.ndarray | None:
        excluded = {for_matching(t) for t in exclude_texts}
        if at is None and not excluded:
            return None
        active = [e.active_at(at) if at is not None else True for e in self.entries]
        rows = [
            r
            for r, (entry, text) in enumerate(zip(self._row_entry, self._row_texts, strict=True))
            if active[entry] and text not in excluded
        ]
        if len(rows) == len(self._row_texts):
            return None
        return np.asarray(rows, dtype=np.int64)

    def _pool(
        self,
        q1: np.ndarray,
        q2: np.ndarray | None,
        lexical: np.ndarray,
        allowed: np.ndarray | None,
        row_mask: np.ndarray,
    ) -> list[int]:
        rows = list(self._primary.top_rows(q1, _POOL_ROWS, allowed))
        if self._second is not None and q2 is not None:
            rows += list(self._second.top_rows(q2, _POOL_ROWS, allowed))
        masked = np.where(row_mask, lexical, 0.0)
        best = np.argsort(-masked)[:_POOL_LEXICAL]
        rows += [int(r) for r in best if masked[r] > 0.0]
        return list(dict.fromkeys(int(self._row_entry[r]) for r in rows))

    @staticmethod
    def _intent_value(intent: str | None, confidence: float | None) -> float:
        if intent is None or confidence is None:
            return 0.0
        return float(confidence) if intent in QUESTION_INTENTS else 0.0

    def _score_entries(
        self,
        pool: Sequence[int],
        q1: np.ndarray,
        q2: np.ndarray | None,
        lexical: np.ndarray,
        row_mask: np.ndarray,
        intent_value: float,
        codes: frozenset[str],
    ) -> list[Scored]:
        """The signals and score of every pooled entry; row-wise work is done once for all rows.

        Per entry, over its rows left in ``row_mask``: best cosine under each encoder, the text
        reaching the primary one (``matched``), best lexical score, and the ``code`` agreement
        of the query's product codes with the entry's texts and answer.
        """
        if not pool:
            return []
        entries = np.asarray(pool, dtype=np.int64)
        starts = self._starts[:-1]
        dense_rows = np.where(row_mask, self._primary.matrix @ q1, -1.0)
        dense = np.maximum.reduceat(dense_rows, starts)[entries]
        # first row of each pooled entry reaching its best cosine: the text that matched
        is_best = dense_rows >= np.maximum.reduceat(dense_rows, starts)[self._row_entry]
        first = np.where(is_best, np.arange(len(dense_rows)), len(dense_rows))
        best_rows = np.minimum.reduceat(first, starts)[entries]
        lex = np.maximum.reduceat(np.where(row_mask, lexical, 0.0), starts)[entries]
        answer = self._answers[entries] @ q1
        second = None
        if self._second is not None and q2 is not None:
            second_rows = np.where(row_mask, self._second.matrix @ q2, -1.0)
            second = np.maximum.reduceat(second_rows, starts)[entries]
        out = []
        for k, entry_index in enumerate(pool):
            signals = {
                "dense": float(dense[k]),
                "lexical": float(lex[k]),
                "answer": float(answer[k]),
                "intent": intent_value,
                "code": self._code_signal(int(entry_index), codes, row_mask) if codes else 0.0,
            }
            if second is not None:
                signals["second"] = float(second[k])
            entry = self.entries[entry_index]
            matched = self._row_originals[int(best_rows[k])]
            out.append(Scored(entry, matched, signals, self.scorer.score(signals)))
        return out

    def _code_signal(self, entry_index: int, codes: frozenset[str], row_mask: np.ndarray) -> float:
        start, stop = int(self._starts[entry_index]), int(self._starts[entry_index + 1])
        entry_codes = self._answer_codes[entry_index].union(
            *(self._row_codes[r] for r in range(start, stop) if row_mask[r])
        )
        return codes_agree(codes, entry_codes)

    def _find_shadows(self) -> dict[int, frozenset[int]]:
        """Campaign entry index → twins: same-category evergreen entries it near-duplicates."""
        shadows: dict[int, frozenset[int]] = {}
        matrix = self._primary.matrix
        for c, campaign in enumerate(self.entries):
            if campaign.campaign is None:
                continue
            c_rows = matrix[self._starts[c] : self._starts[c + 1]]
            hits = set()
            for e, evergreen in enumerate(self.entries):
                if evergreen.campaign is not None or evergreen.category != campaign.category:
                    continue
                e_rows = matrix[self._starts[e] : self._starts[e + 1]]
                near = len(c_rows) and len(e_rows) and float((c_rows @ e_rows.T).max())
                if near and near >= self.topic_similarity:
                    hits.add(e)
            shadows[c] = frozenset(hits)
        return shadows

    def _shadowed(self, campaign: Scored, evergreen: Scored) -> bool:
        """Whether the active ``campaign`` entry takes the place of ``evergreen`` for this query."""
        index_of = self._index_of
        if index_of[evergreen.entry.id] in self._shadows.get(index_of[campaign.entry.id], ()):
            return True
        gap = evergreen.signals["dense"] - campaign.signals["dense"]
        return evergreen.score >= campaign.score and gap <= self.campaign_margin

    def _apply_campaigns(self, scored: list[Scored]) -> list[Scored]:
        dropped: set[str] = set()
        promoted: dict[str, float] = {}
        for c in scored:
            if c.entry.campaign is None or c.entry.id in dropped:
                continue
            for e in scored:
                if e.entry.campaign is None and e.entry.id not in dropped and self._shadowed(c, e):
                    promoted[c.entry.id] = max(promoted.get(c.entry.id, c.score), e.score)
                    dropped.add(e.entry.id)
        if not dropped:
            return scored
        out = [
            Scored(s.entry, s.matched, {**s.signals, "campaign": 1.0}, promoted[s.entry.id])
            if s.entry.id in promoted
            else s
            for s in scored
            if s.entry.id not in dropped
        ]
        out.sort(key=lambda s: s.score, reverse=True)
        return out

    @staticmethod
    def _candidate(s: Scored) -> Candidate:
        return Candidate(
            entry_id=s.entry.id,
            question=s.entry.question,
            matched=s.matched,
            answer=s.entry.answer,
            category=s.entry.category,
            campaign=s.entry.campaign,
            score=s.score,
            signals=dict(s.signals),
        )


def _query_form(text: str) -> str:
    """The text the encoders and the lexical signal see for a query (emoji-only: kept as is)."""
    return for_matching(text) or text
