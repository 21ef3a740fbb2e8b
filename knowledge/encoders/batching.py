"""Query embedding under load: concurrent questions share one forward pass, repeats cost nothing.

A gateway answers shoppers from FastAPI's thread pool, and every question needs its vectors.
One at a time, multilingual-e5-small takes ~24-28 ms a question on one core in float32 (~18 ms in
kefu's default int8); eight in one batch take ~10 ms each in float32 (measured on this project's
2-core machines; the load benchmark's figures are in the README). `BatchingEncoder` wraps an
encoder so that questions arriving while a forward pass runs wait for the next one and go in
together: with one shopper nothing waits, under a Double 11 peak the batches grow by themselves
(no timer, no added latency).

It also keeps the vectors of recent questions (an LRU by text): a peak is many shoppers asking
the same few questions ("什么时候发货", "定金能退吗"), and a vector depends only on the encoder and
the text, never on the knowledge base version or the time, so a hit is always right.

Large calls (index builds, calibration) go straight to the wrapped encoder: they are batches
already, and routing them through the queue would make shoppers wait behind them.

`prefetch` starts embedding without waiting: the gateway calls it when a shopper's message
arrives, so the question is embedded on one core while Rasa classifies it on the other, and the
knowledge decision that follows finds the vector ready (or joins the pass already under way,
never embedding the same text twice).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from knowledge.retrieval import Encoder

DEFAULT_MAX_BATCH = 16  # beyond this a forward pass gains little per question (e5-small, 1 core)
DEFAULT_CACHE_SIZE = 4096  # recent distinct questions whose vectors are kept (~6 MB for e5 + USE)


@dataclass(eq=False)  # one pass, hashed by identity
class _Request:
    texts: list[str]
    done: threading.Event = field(default_factory=threading.Event)
    vectors: np.ndarray | None = None
    error: BaseException | None = None

    def vector(self, text: str) -> np.ndarray:
        """The finished pass's vector of ``text``."""
        assert self.vectors is not None
        row: np.ndarray = self.vectors[self.texts.index(text)]
        return row


class BatchingEncoder:
    """An `Encoder` that batches concurrent small calls and caches recent texts' vectors.

    Args:
        inner: The encoder doing the work (thread-safe; its ``name`` and ``dim`` are kept).
        max_batch: Most texts in one forward pass; larger calls bypass the queue.
        cache_size: Distinct texts whose vectors are kept (0: no cache).
    """

    def __init__(self, inner: Encoder, *, max_batch: int = DEFAULT_MAX_BATCH,
                 cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.max_batch = max_batch
        self.cache_size = cache_size
        self.hits = 0  # texts answered from the cache
        self.misses = 0  # texts embedded
        self.batches = 0  # forward passes made for queued calls
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()  # guards _cache, _pending and the counters
        self._pending: dict[str, _Request] = {}  # texts queued or being embedded, by text
        self._queue: list[_Request] = []
        self._queue_ready = threading.Condition()
        self._worker: threading.Thread | None = None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` as normalised float32 rows (thread-safe)."""
        texts = list(texts)
        if len(texts) > self.max_batch:
            return np.asarray(self.inner.encode(texts), dtype=np.float32)
        known, waiting = self._claim(texts)
        for request in dict.fromkeys(waiting.values()):  # ours and other callers' passes
            request.done.wait()
            if request.error is not None:
                raise request.error
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = known[text] if text in known else waiting[text].vector(text)
        return out

    def prefetch(self, texts: Sequence[str]) -> None:
        """Start embedding the texts not cached or under way, without waiting for them.

        A later `encode` of the same texts finds them in the cache, or waits for this pass.
        Does nothing without a cache (the vectors would have nowhere to wait).
        """
        texts = list(texts)
        if self.cache_size and 0 < len(texts) <= self.max_batch:
            self._claim(texts)

    # --- cache and passes under way -----------------------------------------------------------

    def _claim(self, texts: list[str]) -> tuple[dict[str, np.ndarray], dict[str, _Request]]:
        """Cached vectors, and the pass each other text waits for (queued here if none is)."""
        found: dict[str, np.ndarray] = {}
        waiting: dict[str, _Request] = {}
        with self._cache_lock:
            for text in texts:
                vector = self._cache.get(text) if self.cache_size else None
                if vector is not None:
                    self._cache.move_to_end(text)
                    found[text] = vector
                elif text in self._pending:
                    waiting[text] = self._pending[text]
            self.hits += sum(1 for t in texts if t in found)
            missing = list(dict.fromkeys(t for t in texts if t not in found and t not in waiting))
            if missing:
                request = _Request(missing)
                for text in missing:
                    self._pending[text] = request
                    waiting[text] = request
        if missing:
            self._enqueue(request)
        return found, waiting

    def _settle(self, request: _Request) -> None:
        """Cache a finished pass's vectors and let its waiters go."""
        with self._cache_lock:
            for text in request.texts:
                if self._pending.get(text) is request:
                    del self._pending[text]
            if request.vectors is not None:
                self.misses += len(request.texts)
                if self.cache_size:
                    for text, vector in zip(request.texts, request.vectors, strict=True):
                        self._cache[text] = vector
                        self._cache.move_to_end(text)
                    while len(self._cache) > self.cache_size:
                        self._cache.popitem(last=False)
        request.done.set()

    # --- batching ---------------------------------------------------------------------------

    def _enqueue(self, request: _Request) -> None:
        with self._queue_ready:
            self._queue.append(request)
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._work, name=f"encoder-batch-{self.name}", daemon=True)
                self._worker.start()
            self._queue_ready.notify()

    def _next_batch(self) -> list[_Request]:
        """Wait for queued calls and take as many as fit one forward pass (at least one)."""
        with self._queue_ready:
            while not self._queue:
                self._queue_ready.wait()
            batch: list[_Request] = []
            size = 0
            while self._queue and (not batch or size + len(self._queue[0].texts) <= self.max_batch):
                request = self._queue.pop(0)
                batch.append(request)
                size += len(request.texts)
            return batch

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            texts = list(dict.fromkeys(t for r in batch for t in r.texts))
            try:
                vectors = np.asarray(self.inner.encode(texts), dtype=np.float32)
            except BaseException as exc:  # every waiting caller gets it, the worker goes on
                for request in batch:
                    request.error = exc
                    self._settle(request)
                continue
            self.batches += 1
            row = {t: i for i, t in enumerate(texts)}
            for request in batch:
                request.vectors = vectors[[row[t] for t in request.texts]]
                self._settle(request)
