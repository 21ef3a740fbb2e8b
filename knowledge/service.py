"""The knowledge service: one immutable index per published version, swapped in atomically.

A `KnowledgeIndex` bundles what answering needs for one version (entries, retriever with its
classifier head, the knowledge base's calibration `Profile`, the shipped decision model).
`KnowledgeService` answers from whichever index its single reference points to; a request reads
that reference once, so it never mixes two versions and never sees one half-built. `build_index`
makes an index (calibrated, or *provisional*: without the held-out questions, which take longest),
and `shared_encoders` loads the process's encoders once. Keeping a running process on the live
version is `knowledge.runtime.KnowledgeRuntime`'s job.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from knowledge.calibration import fit_head, generic_oos, language_of, profile
from knowledge.confidence import DecisionModel, Profile, Ranked, features, load_model
from knowledge.decision import Policy, decide
from knowledge.models import Candidate, Decision, DecisionKind, Entry, KnowledgeBase
from knowledge.retrieval import Encoder, Retriever, Signals
from knowledge.settings import KnowledgeSettings, get_settings
from knowledge.store import VersionInfo
from knowledge.text import for_matching, normalize

logger = logging.getLogger(__name__)

Vectors = dict[str, dict[str, np.ndarray]]  # encoder name -> text -> vector
_SIGNALS = ("dense", "second", "lexical", "answer", "code", "cent_dense", "cent_second", "head")


# --- index ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KnowledgeIndex:
    """Everything needed to answer from one knowledge-base version; never modified once built."""

    kb: KnowledgeBase
    retriever: Retriever
    profile: Profile
    model: DecisionModel
    policy: Policy
    info: VersionInfo | None = None  # None for an index built straight from a file
    provisional: bool = False  # answering before its held-out questions are asked
    built_at: float = field(default_factory=time.time)
    build_seconds: float = 0.0
    vectors: Vectors = field(default_factory=dict, repr=False)  # every vector the build used
    new_vectors: Vectors = field(default_factory=dict, repr=False)  # those it had to embed

    @property
    def version_id(self) -> str | None:
        """The published version this index answers for."""
        return self.info.id if self.info is not None else None

    def rank(self, texts: Sequence[str], ats: Sequence[datetime | None], *,
             query_vectors: Sequence[Mapping[str, np.ndarray]] | None = None
             ) -> tuple[Signals, Ranked]:
        """Signals and ranking of every entry for each question."""
        s = self.retriever.signals(texts, ats, query_vectors=query_vectors)
        return s, Ranked.of(self.model.ranker, s)

    def confidence(self, s: Signals, ranked: Ranked,
                   raw_texts: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``p_top`` and ``p_in3`` of each question."""
        x = features(s, ranked, self.profile, raw_texts=raw_texts)
        return self.model.p_top.p(x), self.model.p_in3.p(x)

    def candidates(self, s: Signals, ranked: Ranked, row: int, k: int) -> list[Candidate]:
        """The ``k`` best live candidates of one question, best first."""
        out = []
        for j in ranked.order[row, :k]:
            if not s.live[row, j]:
                break
            entry = self.retriever.entries[int(j)]
            out.append(Candidate(
                entry_id=entry.id, question=entry.question,
                matched=self.retriever.matched(s, row, int(j)), answer=entry.answer,
                category=entry.category, campaign=entry.campaign,
                score=round(float(ranked.probs[row, j]), 6),
                signals={name: round(float(getattr(s, name)[row, j]), 6) for name in _SIGNALS},
            ))
        return out


def policy_of(model: DecisionModel, settings: KnowledgeSettings) -> Policy:
    """The model's cuts, unless settings move them."""
    return Policy(
        answer=settings.answer_confidence if settings.answer_confidence is not None
        else model.answer,
        clarify=settings.clarify_confidence if settings.clarify_confidence is not None
        else model.clarify,
    )


class _MemoEncoder:
    """An encoder that serves known vectors from memory and remembers what it had to compute.

    While building, every miss is encoded and remembered (so calibration, which asks each entry
    text again as a query, reuses the index vectors). Once frozen it only serves hits, so shopper
    questions do not grow it.
    """

    def __init__(self, inner: Encoder, known: Mapping[str, np.ndarray]) -> None:
        self._inner = inner
        self.known = dict(known)
        self.fresh: dict[str, np.ndarray] = {}
        self._frozen = False

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def dim(self) -> int:
        return self._inner.dim

    def warm(self, texts: Iterable[str]) -> None:
        """Encode every unknown text in one batch (much faster than one by one)."""
        missing = list(dict.fromkeys(t for t in texts if t and t not in self.known))
        if missing:
            self._remember(missing, self._inner.encode(missing))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self.known))
        computed: dict[str, np.ndarray] = {}
        if missing:
            vectors = np.asarray(self._inner.encode(missing), dtype=np.float32)
            computed = dict(zip(missing, vectors, strict=True))
            if not self._frozen:
                self._remember(missing, vectors)
        return np.stack([computed[t] if t in computed else self.known[t] for t in texts])

    def prefetch(self, texts: Sequence[str]) -> None:
        """Let the wrapped encoder start on the unknown texts, if it can (`BatchingEncoder`)."""
        missing = [t for t in texts if t not in self.known]
        prefetch = getattr(self._inner, "prefetch", None)
        if missing and prefetch is not None:
            prefetch(missing)

    def freeze(self) -> None:
        self._frozen = True

    def _remember(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        for text, vector in zip(texts, vectors, strict=True):
            self.known[text] = vector
            self.fresh[text] = vector


def calibration_texts(kb: KnowledgeBase, oos_questions: Sequence[str]) -> list[str]:
    """Every text building and calibrating an index for ``kb`` embeds (as the encoders see it)."""
    oos = [for_matching(q) or q for q in oos_questions]
    return list(dict.fromkeys([*Retriever.texts_of(kb.entries), *oos]))


def build_index(
    kb: KnowledgeBase,
    encoder: Encoder,
    second: Encoder | None = None,
    *,
    info: VersionInfo | None = None,
    oos_questions: Sequence[str] | None = None,
    vectors: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    provisional: bool = False,
    model: DecisionModel | None = None,
    settings: KnowledgeSettings | None = None,
) -> KnowledgeIndex:
    """Embed, index and calibrate ``kb``; CPU-heavy, so services call it in a worker thread.

    Args:
        kb: The knowledge base.
        encoder: The primary encoder.
        second: The second encoder (USE); e5 stands in for its signals without it.
        info: The published version ``kb`` is, if it is one.
        oos_questions: Out-of-scope questions for calibration (the generic pool of the knowledge
            base's language when ``None``).
        vectors: Known vectors by encoder name then text; only other texts are embedded.
        provisional: Skip the held-out questions (the slowest part: a head fitted five more
            times); the index answers at once and a calibrated one replaces it.
        model: The decision model (the shipped one when ``None``).
        settings: Where the policy's cuts may be moved (`get_settings` when ``None``).
    """
    started = time.perf_counter()
    settings = settings or get_settings()
    model = model or load_model()
    oos = list(oos_questions) if oos_questions is not None else generic_oos(language_of(kb))
    vectors = vectors or {}
    memos = [_MemoEncoder(e, vectors.get(e.name, {})) for e in (encoder, second) if e is not None]
    for memo in memos:
        memo.warm(calibration_texts(kb, oos))
    primary_memo, second_memo = memos[0], (memos[1] if len(memos) > 1 else None)
    retriever = Retriever.build(kb.entries, primary_memo, second_memo,
                                twin_similarity=settings.twin_similarity)
    retriever = retriever.with_head(fit_head(retriever))
    prof = profile(retriever, model.ranker, oos, kb, with_held_out=not provisional)
    for memo in memos:
        memo.freeze()
    elapsed = time.perf_counter() - started
    logger.info("%s index for %s built in %.2fs (%d entries, %d held-out questions)",
                "provisional" if provisional else "calibrated", info.id if info else "file",
                elapsed, len(kb.entries), len(prof.loo_right))
    return KnowledgeIndex(
        kb=kb, retriever=retriever, profile=prof, model=model, policy=policy_of(model, settings),
        info=info, provisional=provisional, build_seconds=elapsed,
        vectors={m.name: m.known for m in memos},
        new_vectors={m.name: m.fresh for m in memos if m.fresh},
    )


# --- service ----------------------------------------------------------------------------------


class KnowledgeService:
    """Answers questions from the current index; safe to call from many threads at once.

    Args:
        index: The index to start with (``None``: nothing published, every question is handed off).
        settings: Time zone of naive times and the number of candidates per decision.
    """

    def __init__(
        self, index: KnowledgeIndex | None = None, *, settings: KnowledgeSettings | None = None
    ) -> None:
        self._index = index
        self._settings = settings or get_settings()

    @property
    def index(self) -> KnowledgeIndex | None:
        """The index answering right now."""
        return self._index

    @property
    def version(self) -> VersionInfo | None:
        """The published version answering right now."""
        index = self._index
        return index.info if index is not None else None

    def pinned(self) -> KnowledgeService:
        """A service fixed to the current index, for answers that read it more than once."""
        return KnowledgeService(self._index, settings=self._settings)

    def swap(self, index: KnowledgeIndex) -> KnowledgeIndex | None:
        """Make ``index`` answer from now on (one reference assignment); returns the old one."""
        previous, self._index = self._index, index
        logger.info("knowledge index swapped: %s -> %s%s",
                    previous.version_id if previous else None, index.version_id,
                    " (provisional)" if index.provisional else "")
        return previous

    def now(self) -> datetime:
        """The current time in the configured zone."""
        return datetime.now(self._settings.tz)

    def as_of(self, at: datetime | None) -> datetime:
        """``at`` made aware (naive times are in the configured zone); now when ``None``."""
        if at is None:
            return self.now()
        return at if at.utcoffset() is not None else at.replace(tzinfo=self._settings.tz)

    def decide(
        self,
        text: str,
        *,
        at: datetime | None = None,
        intent: str | None = None,
        intent_confidence: float | None = None,
    ) -> Decision:
        """Answer, clarify or hand off ``text`` as of ``at`` (default: now).

        ``intent`` and ``intent_confidence`` (Rasa's) are accepted and not used: they do not
        separate in-scope from out-of-scope questions (0.73 against 0.71 on the demo store).
        """
        index, when = self._index, self.as_of(at)
        if index is None:
            return Decision(kind=DecisionKind.HANDOFF, text=text, at=when, candidates=[],
                            reason="no knowledge base is live")
        s, ranked = index.rank([normalize(text)], [when])
        p_top, p_in3 = index.confidence(s, ranked, raw_texts=[text])
        candidates = index.candidates(s, ranked, 0, self._settings.search_k)
        return decide(text, candidates, float(p_top[0]), float(p_in3[0]), index.policy, when,
                      live=int(s.live[0].sum()), kb_version=index.version_id)

    def prefetch(self, text: str) -> None:
        """Start embedding ``text`` as `decide` will, without waiting.

        The gateway calls this when a message arrives, so the vector is ready (or under way) by
        the time Rasa's action asks for a decision.
        """
        index = self._index
        if index is not None:
            index.retriever.prefetch_query(normalize(text))

    def search(self, text: str, *, at: datetime | None = None, k: int = 5) -> list[Candidate]:
        """The ``k`` best candidates active at ``at`` (default: now), best first."""
        index = self._index
        if index is None:
            return []
        s, ranked = index.rank([normalize(text)], [self.as_of(at)])
        return index.candidates(s, ranked, 0, k)

    async def search_async(
        self, text: str, *, at: datetime | None = None, k: int = 5
    ) -> list[Candidate]:
        """`search` in a worker thread, for async callers (encoding a question is CPU work)."""
        return await asyncio.to_thread(self.search, text, at=at, k=k)

    def entry(self, entry_id: str) -> Entry | None:
        """The entry with that id in the current version, if any."""
        index = self._index
        return index.kb.entry(entry_id) if index is not None else None


# --- encoders ----------------------------------------------------------------------------------

_encoders: dict[tuple[str, bool, bool, bool], tuple[Encoder, Encoder | None]] = {}
_encoders_lock = threading.Lock()


def shared_encoders(settings: KnowledgeSettings | None = None) -> tuple[Encoder, Encoder | None]:
    """The process's encoders (primary, optional second), loaded on first use and then shared.

    Each is a `BatchingEncoder`: concurrent questions share a forward pass, repeats are cached.

    Raises:
        ModelNotPreparedError: the model files are missing (run ``make model``).
    """
    settings = settings or get_settings()
    key = (settings.embedding_model, settings.embedding_int8, settings.embedding_light_tokenizer,
           settings.second_encoder)
    with _encoders_lock:
        if key not in _encoders:
            from knowledge.encoders.batching import BatchingEncoder
            from knowledge.encoders.embedding import (  # imports torch
                load_encoder,
                load_second_encoder,
            )

            size = settings.query_vector_cache
            second = load_second_encoder() if settings.second_encoder else None
            _encoders[key] = (
                BatchingEncoder(load_encoder(
                    settings.embedding_model, int8=settings.embedding_int8,
                    light_tokenizer=settings.embedding_light_tokenizer), cache_size=size),
                BatchingEncoder(second, cache_size=size) if second is not None else None,
            )
        return _encoders[key]
