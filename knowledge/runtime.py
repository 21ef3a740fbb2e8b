"""The knowledge runtime: keeps a running process's `KnowledgeService` on the live version.

`KnowledgeRuntime` loads the live version from Redis at start (publishing the bundled demo store on
a fresh install), listens on ``kb_events_channel`` and swaps the service to the new version on
every publish or rollback, within the 2 seconds every kefu process is allowed.

Rebuilds are fast because vectors are cached twice: in Redis by text sha (``kb_embedding_key``,
shared by every process and every restart) and in memory from the previous index, so a publish
only embeds the texts it adds. Calibration (asking the knowledge base its held-out questions, with
a classifier head fitted once per fold) still takes seconds, so no swap waits for it:

- a new version answers at once through a *provisional* index (its own entries, head and
  out-of-scope pool, without the held-out questions; see `build_index`);
- its calibrated index is built by a separate task, one calibration at a time, and replaces the
  provisional one only if its version is still live when it is ready; a calibration made stale by a
  newer publish or rollback is kept with the recent indexes instead (if it had not started yet, it
  is skipped: its thread could not be interrupted once running);
- the last swapped-out calibrated indexes are kept, so rolling back to one of them is a plain swap.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, cast, overload

import numpy as np
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from kefu.keys import kb_embedding_key, kb_events_channel
from kefu.redis import async_client
from knowledge.calibration import generic_oos, language_of
from knowledge.encoders.embedding import release_freed_memory
from knowledge.errors import ValidationFailed
from knowledge.loader import load_kb
from knowledge.models import KnowledgeBase
from knowledge.retrieval import Encoder
from knowledge.service import (
    KnowledgeIndex,
    KnowledgeService,
    Vectors,
    build_index,
    calibration_texts,
    shared_encoders,
)
from knowledge.settings import KnowledgeSettings, get_settings
from knowledge.store import KnowledgeStore, VersionInfo, text_sha

logger = logging.getLogger(__name__)

_RECENT_INDEXES = 2  # calibrated indexes kept besides the live one: rollbacks to them are instant


class EmbeddingCache:
    """Vectors in Redis by encoder name and text sha (float32, base64), with a TTL."""

    def __init__(self, redis: aioredis.Redis, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds

    async def fetch(self, model: str, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``texts`` (TTL refreshed on every hit)."""
        if not texts:
            return {}
        keys = [kb_embedding_key(model, text_sha(t)) for t in texts]
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
                    pipe.set(kb_embedding_key(model, text_sha(text)), data.decode("ascii"),
                             ex=self._ttl)
            await pipe.execute()


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
        self._wake = asyncio.Event()
        self._swapped = asyncio.Condition()
        self._refresh_lock = asyncio.Lock()  # serialises swaps; never held across a calibration
        self._calibrating = asyncio.Lock()  # one calibration at a time: each keeps a core busy
        self._calibrations: dict[str, asyncio.Task[KnowledgeIndex | None]] = {}  # by version
        self._live_id: str | None = None  # the live version as last read from Redis
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._pubsub: aioredis.client.PubSub | None = None
        self._recent: OrderedDict[str, KnowledgeIndex] = OrderedDict()  # calibrated, by version

    async def start(self) -> None:
        """Load the live version (or publish the demo store), then follow every change.

        Raises:
            ModelNotPreparedError: no encoders were given and the model files are missing.
        """
        if self._encoders is None:
            self._encoders = await asyncio.to_thread(shared_encoders, self.settings)
        self._pubsub = self._redis.pubsub()
        await self._pubsub.subscribe(kb_events_channel())  # before reading live: nothing missed
        await self._publish_demo_if_empty()
        await self.refresh()
        await self.settle()  # nothing answers yet: the first index waits for its calibration
        self._tasks = [asyncio.create_task(self._listen(self._pubsub), name="kb-listen"),
                       asyncio.create_task(self._rebuild_loop(), name="kb-rebuild")]
        self.ready = True

    async def stop(self) -> None:
        """Stop following changes (calibrations under way are abandoned) and release Redis."""
        self._closing = True
        await _cancel_all([*self._tasks, *self._calibrations.values()])
        self._tasks = []
        self.ready = False
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            self._pubsub = None
        if self._owns_redis:
            await self._redis.aclose()

    async def refresh(self) -> KnowledgeIndex | None:
        """Make the live version answer, without waiting for its calibration; returns the index.

        A rollback to a recent version is a plain swap. Another version answers at once through a
        provisional index (its head and pool, not yet its held-out questions) while its calibrated
        index is built by a separate task; on first start or with ``provisional_swap`` off, the
        version answering now keeps answering until that calibrated index is ready (`settle` waits
        for it).
        """
        async with self._refresh_lock:
            live = await self.store.live()
            current = self.service.index
            if live is None:
                return current
            info, kb = live
            self._live_id = info.id
            same = current is not None and current.version_id == info.id
            if current is not None and same and not current.provisional:
                return current
            recent = self._recent.pop(info.id, None)
            if recent is not None:
                await self._swap(recent)
                return recent
            if current is not None and not same and self.settings.provisional_swap:
                await self._swap(await self.build(kb, info=info, provisional=True))
            self._calibrate_later(kb, info)
            return self.service.index

    async def settle(self) -> KnowledgeIndex | None:
        """Wait until no calibration is pending; returns the index answering then.

        Raises:
            Exception: whatever a calibration raised (the index answering is unchanged).
        """
        while self._calibrations:
            await asyncio.gather(*self._calibrations.values())
        return self.service.index

    async def build(
        self, kb: KnowledgeBase, *, info: VersionInfo | None = None, provisional: bool = False,
    ) -> KnowledgeIndex:
        """An index for ``kb``: vectors from memory and Redis, the rest embedded in a thread.

        ``provisional``: without its held-out questions (see `build_index`).
        """
        assert self._encoders is not None, "start() loads the encoders"
        encoders = [e for e in self._encoders if e is not None]
        oos = generic_oos(language_of(kb))
        texts = calibration_texts(kb, oos)
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
            oos_questions=oos, vectors=known, provisional=provisional, settings=self.settings,
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

    # --- swaps and calibrations -------------------------------------------------------------

    async def _swap(self, index: KnowledgeIndex) -> None:
        previous = self.service.swap(index)
        if previous is not None and previous.version_id != index.version_id:
            self._keep(previous)
        async with self._swapped:
            self._swapped.notify_all()

    def _keep(self, index: KnowledgeIndex) -> None:
        """Remember a calibrated index that is not answering, for an instant rollback to it."""
        if index.provisional or index.version_id is None:
            return
        self._recent[index.version_id] = index
        self._recent.move_to_end(index.version_id)
        while len(self._recent) > _RECENT_INDEXES:
            self._recent.popitem(last=False)

    def _calibrate_later(self, kb: KnowledgeBase, info: VersionInfo) -> None:
        if info.id not in self._calibrations:
            task = asyncio.create_task(self._calibrate(kb, info), name=f"kb-calibrate-{info.id}")
            self._calibrations[info.id] = task
            task.add_done_callback(self._calibration_done)

    async def _calibrate(self, kb: KnowledgeBase, info: VersionInfo) -> KnowledgeIndex | None:
        try:
            async with self._calibrating:
                if info.id != self._live_id:
                    logger.info("calibration of %s skipped: %s is live now", info.id,
                                self._live_id)
                    return None
                index = await self.build(kb, info=info)
                await asyncio.to_thread(release_freed_memory)  # what building it left freed
            async with self._refresh_lock:
                await self._adopt(index)
            return index
        finally:
            self._calibrations.pop(info.id, None)

    async def _adopt(self, index: KnowledgeIndex) -> None:
        """Swap in a freshly calibrated index if its version is live, else keep it for later."""
        current = self.service.index
        answering = current.version_id if current is not None else None
        if index.version_id == self._live_id or (
                index.version_id == answering and current is not None and current.provisional):
            await self._swap(index)
        elif index.version_id != answering:
            logger.info("calibrated index of %s kept for a rollback: %s is live now",
                        index.version_id, self._live_id)
            self._keep(index)

    def _calibration_done(self, task: asyncio.Task[KnowledgeIndex | None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            version = self.service.version
            logger.error("calibration failed (%s); still answering from %s", task.get_name(),
                         version.id if version else None, exc_info=exc)

    # --- following Redis ----------------------------------------------------------------------

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
        while not self._closing:
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    self._wake.set()
            except RedisError:
                logger.warning("knowledge event subscription lost; retrying", exc_info=True)
                await asyncio.sleep(1.0)
                self._wake.set()  # something may have been published meanwhile

    async def _rebuild_loop(self) -> None:
        while not self._closing:
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that arrives as
            # the event is set, and stop() then waits for this task forever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.live_poll_seconds):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.refresh()
            except Exception:  # keep answering from the current index whatever went wrong
                logger.exception("knowledge index refresh failed; still answering from %s",
                                 self.service.version.id if self.service.version else None)
                await asyncio.sleep(1.0)


async def _cancel_all(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait for them, cancelling again any that swallowed the cancel.

    A cancel that lands while redis-py is inside a command can be lost (the task goes on as if
    never cancelled); the loops also stop on ``_closing``, and this repeats the cancel until
    every task is done.
    """
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
