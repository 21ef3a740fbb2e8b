"""The knowledge service: one immutable index per published version, swapped in atomically.

A `KnowledgeIndex` bundles what answering needs for one version (entries, retriever, calibrated
thresholds). `KnowledgeService` answers from whichever index its single reference points to; a
request reads that reference once, so it never mixes two versions and never sees one half-built.
`KnowledgeRuntime` keeps the service current inside a running process: it loads the live version
from Redis at start (publishing the bundled demo store on a fresh install), listens on
``kb_events_channel`` and rebuilds in a worker thread on every publish or rollback, then swaps.

Rebuilds are fast because vectors are cached twice: in Redis by text sha (``kb_embedding_key``,
shared by every process and every restart) and in memory from the previous index, so a publish
only embeds the texts it adds. Calibration still takes about a second, so a new version first
answers through a *provisional* index (its own entries, the previous version's calibration; built
in milliseconds) and the calibrated index replaces it as soon as it is ready. The last swapped-out
indexes are kept, so rolling back to one of them is a plain swap.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast, overload

import numpy as np
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from kefu.keys import kb_embedding_key, kb_events_channel
from kefu.redis import async_client
from knowledge.decision import Thresholds, calibrate, decide, load_generic_oos
from knowledge.errors import ValidationFailed
from knowledge.loader import load_kb
from knowledge.models import Candidate, Decision, DecisionKind, Entry, KnowledgeBase
from knowledge.retrieval import Encoder, Retriever
from knowledge.settings import KnowledgeSettings, get_settings
from knowledge.store import KnowledgeStore, VersionInfo
from knowledge.text import for_matching, normalize

logger = logging.getLogger(__name__)

Vectors = dict[str, dict[str, np.ndarray]]  # encoder name -> text -> vector
_RECENT_INDEXES = 2  # swapped-out indexes kept so a rollback to them is instant


# --- index ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KnowledgeIndex:
    """Everything needed to answer from one knowledge-base version; never modified once built."""

    kb: KnowledgeBase
    retriever: Retriever
    thresholds: Thresholds
    info: VersionInfo | None = None  # None for an index built straight from a file
    provisional: bool = False  # thresholds borrowed from the previous version until calibrated
    built_at: float = field(default_factory=time.time)
    build_seconds: float = 0.0
    vectors: Vectors = field(default_factory=dict, repr=False)  # every vector the build used
    new_vectors: Vectors = field(default_factory=dict, repr=False)  # those it had to embed

    @property
    def version_id(self) -> str | None:
        """The published version this index answers for."""
        return self.info.id if self.info is not None else None


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
    thresholds: Thresholds | None = None,
) -> KnowledgeIndex:
    """Embed, index and calibrate ``kb``; CPU-heavy, so services call it in a worker thread.

    Args:
        kb: The knowledge base.
        encoder: The primary encoder.
        second: The optional second encoder.
        info: The published version ``kb`` is, if it is one.
        oos_questions: Out-of-scope questions for calibration (the generic list when ``None``).
        vectors: Known vectors by encoder name then text; only other texts are embedded.
        thresholds: Skip calibration and use these (a provisional index: building one takes
            milliseconds once the texts are embedded; calibrating takes about a second).
    """
    started = time.perf_counter()
    oos = list(oos_questions) if oos_questions is not None else load_generic_oos()
    vectors = vectors or {}
    texts = Retriever.texts_of(kb.entries) if thresholds else calibration_texts(kb, oos)
    memos = [_MemoEncoder(e, vectors.get(e.name, {})) for e in (encoder, second) if e is not None]
    for memo in memos:
        memo.warm(texts)
    primary_memo, second_memo = memos[0], (memos[1] if len(memos) > 1 else None)
    retriever = Retriever.build(kb.entries, primary_memo, second_memo)
    provisional = thresholds is not None
    if thresholds is None:
        thresholds = calibrate(retriever, kb, oos)
    for memo in memos:
        memo.freeze()
    elapsed = time.perf_counter() - started
    logger.info("%s index for %s built in %.2fs (%d entries, %s)",
                "provisional" if provisional else "calibrated", info.id if info else "file",
                elapsed, len(kb.entries), thresholds.method)
    return KnowledgeIndex(
        kb=kb,
        retriever=retriever.with_scorer(thresholds.scorer),
        thresholds=thresholds,
        info=info,
        provisional=provisional,
        build_seconds=elapsed,
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
        """Answer, clarify or hand off ``text`` as of ``at`` (default: now)."""
        index, when = self._index, self.as_of(at)
        if index is None:
            return Decision(kind=DecisionKind.HANDOFF, text=text, at=when, candidates=[],
                            reason="no knowledge base is live")
        candidates = index.retriever.search(
            normalize(text), at=when, k=self._settings.search_k, intent=intent,
            intent_confidence=intent_confidence,
        )
        return decide(text, candidates, index.thresholds, when, kb_version=index.version_id)

    def search(self, text: str, *, at: datetime | None = None, k: int = 5) -> list[Candidate]:
        """The ``k`` best candidates active at ``at`` (default: now), best first."""
        index = self._index
        if index is None:
            return []
        return index.retriever.search(normalize(text), at=self.as_of(at), k=k)

    async def search_async(
        self, text: str, *, at: datetime | None = None, k: int = 5
    ) -> list[Candidate]:
        """`search` in a worker thread, for async callers (encoding a question is CPU work)."""
        return await asyncio.to_thread(self.search, text, at=at, k=k)

    def entry(self, entry_id: str) -> Entry | None:
        """The entry with that id in the current version, if any."""
        index = self._index
        return index.kb.entry(entry_id) if index is not None else None


# --- encoders and the embedding cache ---------------------------------------------------------

_encoders: dict[tuple[str, bool], tuple[Encoder, Encoder | None]] = {}
_encoders_lock = threading.Lock()


def shared_encoders(settings: KnowledgeSettings | None = None) -> tuple[Encoder, Encoder | None]:
    """The process's encoders (primary, optional second), loaded on first use and then shared.

    Raises:
        ModelNotPreparedError: the model files are missing (run ``make model``).
    """
    settings = settings or get_settings()
    key = (settings.embedding_model, settings.second_encoder)
    with _encoders_lock:
        if key not in _encoders:
            from knowledge.embedding import load_encoder, load_second_encoder  # imports torch

            second = load_second_encoder() if settings.second_encoder else None
            _encoders[key] = (load_encoder(settings.embedding_model), second)
        return _encoders[key]


def _text_sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Vectors in Redis by encoder name and text sha (float32, base64), with a TTL."""

    def __init__(self, redis: aioredis.Redis, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds

    async def fetch(self, model: str, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``texts`` (TTL refreshed on every hit)."""
        if not texts:
            return {}
        keys = [kb_embedding_key(model, _text_sha(t)) for t in texts]
        values = cast(list[str | None], await self._redis.mget(keys))
        found: dict[str, np.ndarray] = {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for text, key, value in zip(texts, keys, values, strict=True):
                if value is not None:
                    found[text] = np.frombuffer(base64.b64decode(value), dtype=np.float32)
                    pipe.expire(key, self._ttl)
            await pipe.execute()
        return found

    async def store(self, vectors: Mapping[str, Mapping[str, np.ndarray]]) -> None:
        """Cache freshly computed vectors."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for model, by_text in vectors.items():
                for text, vector in by_text.items():
                    data = base64.b64encode(np.asarray(vector, dtype=np.float32).tobytes())
                    pipe.set(kb_embedding_key(model, _text_sha(text)), data.decode("ascii"),
                             ex=self._ttl)
            await pipe.execute()


# --- runtime ----------------------------------------------------------------------------------


class KnowledgeRuntime:
    """Keeps a `KnowledgeService` on the live version inside a long-running process.

    Construct it with the process's Redis client (``KnowledgeRuntime(redis)``, the gateway: the
    client stays the caller's) or with settings (``KnowledgeRuntime(settings)``, tools and tests:
    a client is created from ``settings.redis_url`` and closed by `stop`).

    Args:
        redis: An asyncio client (``decode_responses=True``).
        settings: Redis URL, model, demo store, cache TTL, poll interval (`get_settings` if absent).
        encoders: Primary and second encoder; `shared_encoders` when not given.
    """

    @overload
    def __init__(
        self, redis: aioredis.Redis, /, settings: KnowledgeSettings | None = None, *,
        encoders: tuple[Encoder, Encoder | None] | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self, settings: KnowledgeSettings | None = None, /, *, redis: aioredis.Redis | None = None,
        encoders: tuple[Encoder, Encoder | None] | None = None,
    ) -> None: ...

    def __init__(
        self,
        first: aioredis.Redis | KnowledgeSettings | None = None,
        /,
        settings: KnowledgeSettings | None = None,
        *,
        redis: aioredis.Redis | None = None,
        encoders: tuple[Encoder, Encoder | None] | None = None,
    ) -> None:
        if isinstance(first, KnowledgeSettings):
            settings = first
        elif first is not None:
            redis = first
        self.settings = settings or get_settings()
        self._owns_redis = redis is None
        self._redis = redis if redis is not None else async_client(self.settings.redis_url)
        self.store = KnowledgeStore(self._redis)
        self.cache = EmbeddingCache(self._redis, self.settings.embedding_cache_ttl_seconds)
        self.service = KnowledgeService(settings=self.settings)
        self.ready = False  # True once start() has loaded the live version (or found none)
        self._encoders = encoders
        self._oos: list[str] | None = None
        self._wake = asyncio.Event()
        self._swapped = asyncio.Condition()
        self._refresh_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._pubsub: aioredis.client.PubSub | None = None
        self._recent: OrderedDict[str, KnowledgeIndex] = OrderedDict()  # swapped-out, by version

    async def start(self) -> None:
        """Load the live version (or publish the demo store), then follow every change."""
        if self._encoders is None:
            self._encoders = await asyncio.to_thread(shared_encoders, self.settings)
        self._oos = await asyncio.to_thread(load_generic_oos)
        self._pubsub = self._redis.pubsub()
        await self._pubsub.subscribe(kb_events_channel())  # before reading live: nothing missed
        await self._publish_demo_if_empty()
        await self.refresh()
        self._tasks = [asyncio.create_task(self._listen(self._pubsub), name="kb-listen"),
                       asyncio.create_task(self._rebuild_loop(), name="kb-rebuild")]
        self.ready = True

    async def stop(self) -> None:
        """Stop following changes and release Redis."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self.ready = False
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            self._pubsub = None
        if self._owns_redis:
            await self._redis.aclose()

    async def refresh(self) -> KnowledgeIndex | None:
        """Build and swap in the live version if it is not the one answering; returns the index."""
        async with self._refresh_lock:
            live = await self.store.live()
            current = self.service.index
            if live is None:
                return current
            same = current is not None and current.version_id == live[0].id
            if current is not None and same and not current.provisional:
                return current
            index = self._recent.pop(live[0].id, None)  # a rollback: no rebuild needed
            borrow = current is not None and not same and self.settings.provisional_swap
            if index is None and current is not None and borrow:
                # Answer from the new version at once with the current calibration, then
                # replace it with the calibrated index a second later.
                provisional = await self.build(live[1], info=live[0],
                                               thresholds=current.thresholds)
                await self._swap(provisional)
            if index is None:
                index = await self.build(live[1], info=live[0])
            await self._swap(index)
        return index

    async def _swap(self, index: KnowledgeIndex) -> None:
        previous = self.service.swap(index)
        if previous is not None and not previous.provisional and previous.version_id is not None:
            if previous.version_id != index.version_id:
                self._recent[previous.version_id] = previous
            while len(self._recent) > _RECENT_INDEXES:
                self._recent.popitem(last=False)
        async with self._swapped:
            self._swapped.notify_all()

    async def build(
        self, kb: KnowledgeBase, *, info: VersionInfo | None = None,
        thresholds: Thresholds | None = None,
    ) -> KnowledgeIndex:
        """An index for ``kb``: vectors from memory and Redis, the rest embedded in a thread.

        With ``thresholds`` the index is provisional (not calibrated; see `build_index`).
        """
        assert self._encoders is not None, "start() loads the encoders"
        encoders = [e for e in self._encoders if e is not None]
        texts = calibration_texts(kb, self._oos if self._oos is not None else load_generic_oos())
        known: Vectors = {}
        current = self.service.index
        for encoder in encoders:
            previous = current.vectors.get(encoder.name, {}) if current else {}
            in_memory = {t: previous[t] for t in texts if t in previous}
            missing = [t for t in texts if t not in in_memory]
            try:
                fetched = await self.cache.fetch(encoder.name, missing)
            except RedisError:
                logger.warning("embedding cache unavailable; embedding everything", exc_info=True)
                fetched = {}
            known[encoder.name] = {**in_memory, **fetched}
        index = await asyncio.to_thread(
            build_index, kb, self._encoders[0], self._encoders[1], info=info,
            oos_questions=self._oos, vectors=known, thresholds=thresholds,
        )
        if index.new_vectors:
            try:
                await self.cache.store(index.new_vectors)
            except RedisError:
                logger.warning("could not cache new vectors", exc_info=True)
        return index

    async def wait_for_version(
        self, version_id: str, timeout: float, *, calibrated: bool = False
    ) -> KnowledgeIndex:
        """Wait until ``version_id`` answers (``calibrated``: with its own calibration)."""

        def ready() -> bool:
            index = self.service.index
            return (index is not None and index.version_id == version_id
                    and not (calibrated and index.provisional))

        async with asyncio.timeout(timeout), self._swapped:
            await self._swapped.wait_for(ready)
        index = self.service.index
        assert index is not None
        return index

    async def _publish_demo_if_empty(self) -> None:
        path = self.settings.demo_store
        if await self.store.live_id() is not None or not path.exists():
            if not path.exists():
                logger.info("no live knowledge base and no demo store at %s", path)
            return
        try:
            kb = await asyncio.to_thread(load_kb, path)
        except ValidationFailed as exc:
            logger.error("demo store %s is invalid, starting empty: %s", path, exc)
            return
        note = f"bundled demo store {path.name}"
        info = await self.store.publish_if_empty(kb, author="kefu", note=note)
        if info is not None:
            logger.info("published the demo store as %s", info.id)

    async def _listen(self, pubsub: aioredis.client.PubSub) -> None:
        while True:
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    self._wake.set()
            except RedisError:
                logger.warning("knowledge event subscription lost; retrying", exc_info=True)
                await asyncio.sleep(1.0)
                self._wake.set()  # something may have been published meanwhile

    async def _rebuild_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.live_poll_seconds)
            self._wake.clear()
            try:
                await self.refresh()
            except Exception:  # keep answering from the current index whatever went wrong
                logger.exception("knowledge index rebuild failed; still answering from %s",
                                 self.service.version.id if self.service.version else None)
                await asyncio.sleep(1.0)
