"""The knowledge runtime on a real Redis with a stand-in encoder (and once with the real model)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from kefu.redis import async_client
from knowledge.decision import Policy
from knowledge.loader import dump_yaml
from knowledge.models import Category, DecisionKind, Entry, KnowledgeBase
from knowledge.runtime import EmbeddingCache, KnowledgeRuntime
from knowledge.service import KnowledgeIndex
from knowledge.settings import KnowledgeSettings
from knowledge.store import KnowledgeStore, VersionInfo
from tests.knowledge.conftest import shop_kb
from tests.knowledge.fakes import HashingEncoder
from tests.knowledge.gates import CalibrationGate

pytestmark = pytest.mark.redis

GIFT_WRAP = Entry(id="gift-wrap", question="可以礼品包装吗", variants=("能包装成礼物吗", "gift wrapping"),
                  answer="可以，下单备注礼品包装。", category=Category.PRESALE)


def with_gift_wrap(kb: KnowledgeBase) -> KnowledgeBase:
    return KnowledgeBase(entries=(*kb.entries, GIFT_WRAP))


@pytest.fixture
async def runtime(
    settings: KnowledgeSettings, client: aioredis.Redis
) -> AsyncIterator[KnowledgeRuntime]:
    await KnowledgeStore(client).publish(shop_kb(), author="test")
    rt = KnowledgeRuntime(settings, encoders=(HashingEncoder(), None))
    await rt.start()
    yield rt
    await rt.stop()


async def test_runtime_serves_the_live_version(runtime: KnowledgeRuntime) -> None:
    live = await runtime.store.live()
    assert live is not None and runtime.service.version == live[0]
    decision = runtime.service.decide("可以退货吗")
    assert decision.kb_version == live[0].id


async def test_publish_reaches_a_running_process_quickly(
    runtime: KnowledgeRuntime, redis_url: str
) -> None:
    assert runtime.service.decide("可以礼品包装吗").kind is not DecisionKind.ANSWER
    other = async_client(redis_url)  # another process, e.g. `kefu kb publish`
    started = time.monotonic()
    info = await KnowledgeStore(other).publish(with_gift_wrap(shop_kb()), author="ops")
    first = await runtime.wait_for_version(info.id, timeout=2.0)
    elapsed = time.monotonic() - started
    await other.aclose()
    decision = runtime.service.decide("可以礼品包装吗")
    assert decision.kind is DecisionKind.ANSWER and decision.entry is not None
    assert decision.entry.entry_id == "gift-wrap" and decision.kb_version == info.id
    assert elapsed < 2.0
    assert first.provisional  # answering before calibration finished...
    calibrated = await runtime.wait_for_version(info.id, timeout=10.0, calibrated=True)
    assert not calibrated.provisional  # ...which replaces it without another event
    # the provisional index did not ask its held-out questions; the calibrated one did
    assert len(first.profile.loo_right) == 0 and not first.profile.has_loo
    assert calibrated.profile.has_loo
    assert len(calibrated.profile.pool_z1) == len(first.profile.pool_z1) > 0  # both know the pool


async def test_without_provisional_swaps_only_calibrated_indexes_answer(
    settings: KnowledgeSettings, client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    await KnowledgeStore(client).publish(shop_kb(), author="test")
    runtime = KnowledgeRuntime(settings.model_copy(update={"provisional_swap": False}),
                               encoders=(HashingEncoder(), None))
    await runtime.start()
    try:
        caplog.set_level("INFO", logger="knowledge.service")
        info = await runtime.store.publish(with_gift_wrap(shop_kb()), author="ops")
        index = await runtime.wait_for_version(info.id, timeout=10.0)
        assert not index.provisional
        assert not any("(provisional)" in r.getMessage() for r in caplog.records)
    finally:
        await runtime.stop()


async def test_indexes_are_built_with_the_runtimes_own_settings(
    settings: KnowledgeSettings, client: aioredis.Redis
) -> None:
    """The policy's cuts and the twin similarity come from the settings the runtime was given
    (the fake encoder's twin similarity here), not from the process's environment."""
    await KnowledgeStore(client).publish(shop_kb(), author="test")
    own = settings.model_copy(update={"answer_confidence": 0.42, "clarify_confidence": 0.21})
    runtime = KnowledgeRuntime(own, encoders=(HashingEncoder(), None))
    await runtime.start()
    try:
        index = runtime.service.index
        assert index is not None
        assert index.policy == Policy(answer=0.42, clarify=0.21)
        campaign, evergreen = (index.retriever.index_of(i) for i in ("ship-time-d11", "ship-time"))
        assert campaign is not None and index.retriever.twins[campaign] == frozenset({evergreen})
    finally:
        await runtime.stop()


async def test_rollback_swaps_back_the_previous_index_without_rebuilding(
    runtime: KnowledgeRuntime,
) -> None:
    first_index = runtime.service.index
    assert first_index is not None and first_index.info is not None
    second = await runtime.store.publish(with_gift_wrap(shop_kb()), author="ops")
    await runtime.wait_for_version(second.id, timeout=10.0, calibrated=True)
    assert runtime.service.entry("gift-wrap") is not None
    await runtime.store.rollback(first_index.info.id, author="ops")
    back = await runtime.wait_for_version(first_index.info.id, timeout=2.0)
    assert back is first_index
    assert runtime.service.entry("gift-wrap") is None


@pytest.fixture
def gate(runtime: KnowledgeRuntime, monkeypatch: pytest.MonkeyPatch) -> Iterator[CalibrationGate]:
    """Holds calibrations from now on (the runtime has started, calibrated)."""
    held = CalibrationGate(monkeypatch)
    yield held
    held.open()  # before the runtime stops: a held thread would outlive the test


def without_points(kb: KnowledgeBase) -> KnowledgeBase:
    return KnowledgeBase(entries=tuple(e for e in kb.entries if e.id != "points"))


async def publish_held_in_calibration(
    runtime: KnowledgeRuntime, gate: CalibrationGate,
) -> tuple[KnowledgeIndex, VersionInfo]:
    """Publish a second version over the live index; it answers provisionally, its calibration is
    held at the gate. Returns the index that was live before and the new version."""
    first = runtime.service.index
    assert first is not None and first.info is not None
    second = await runtime.store.publish(with_gift_wrap(shop_kb()), author="ops")
    assert (await runtime.wait_for_version(second.id, timeout=2.0)).provisional
    await gate.reached(1)  # the new version is being calibrated, and stays so until opened
    return first, second


async def test_rollback_during_calibration_does_not_wait_for_it(
    runtime: KnowledgeRuntime, gate: CalibrationGate,
) -> None:
    first, second = await publish_held_in_calibration(runtime, gate)
    assert first.info is not None

    await runtime.store.rollback(first.info.id, author="ops")
    assert await runtime.wait_for_version(first.info.id, timeout=2.0) is first
    assert runtime.service.entry("gift-wrap") is None and gate.calls == 1

    gate.open()
    await runtime.settle()
    assert runtime.service.index is first  # the late calibration did not replace the live version
    await runtime.store.rollback(second.id, author="ops")  # ...it was kept: a plain swap
    forward = await runtime.wait_for_version(second.id, timeout=2.0)
    assert not forward.provisional and gate.calls == 1


async def test_a_calibration_made_stale_before_it_starts_is_skipped(
    runtime: KnowledgeRuntime, gate: CalibrationGate,
) -> None:
    first, second = await publish_held_in_calibration(runtime, gate)
    assert first.info is not None
    third = await runtime.store.publish(without_points(shop_kb()), author="ops")
    assert (await runtime.wait_for_version(third.id, timeout=2.0)).provisional  # not queued
    await runtime.store.rollback(first.info.id, author="ops")
    assert await runtime.wait_for_version(first.info.id, timeout=2.0) is first

    gate.open()
    assert await runtime.settle() is first
    assert gate.calls == 1  # the third version's calibration, queued behind the second, skipped
    await runtime.store.rollback(second.id, author="ops")
    assert not (await runtime.wait_for_version(second.id, timeout=2.0)).provisional
    await runtime.store.rollback(third.id, author="ops")
    assert (await runtime.wait_for_version(third.id, timeout=2.0)).provisional
    assert not (await runtime.wait_for_version(third.id, timeout=10.0, calibrated=True)).provisional
    assert gate.calls == 2


async def test_a_failed_calibration_keeps_the_provisional_index_until_retried(
    runtime: KnowledgeRuntime, gate: CalibrationGate, caplog: pytest.LogCaptureFixture,
) -> None:
    gate.fail = 1
    gate.open()
    info = await runtime.store.publish(with_gift_wrap(shop_kb()), author="ops")
    await runtime.wait_for_version(info.id, timeout=2.0)
    deadline = time.monotonic() + 10.0
    while not any("calibration failed" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, "the failure was not logged"
        await asyncio.sleep(0.01)
    index = runtime.service.index
    assert index is not None and index.provisional and index.version_id == info.id
    assert runtime.service.decide("可以礼品包装吗").kb_version == info.id
    await runtime.refresh()  # what the next event or poll does
    calibrated = await runtime.settle()
    assert calibrated is not None and not calibrated.provisional and gate.calls == 2


async def test_stop_is_not_lost_when_an_event_arrives_with_it(
    settings: KnowledgeSettings, client: aioredis.Redis,
) -> None:
    """On Python 3.11 ``asyncio.wait_for`` swallows a cancel that arrives with the awaited event:
    the rebuild loop then ignored stop() whenever a publish landed as the process stopped."""
    await KnowledgeStore(client).publish(shop_kb(), author="test")
    runtime = KnowledgeRuntime(settings, encoders=(HashingEncoder(), None))
    await runtime.start()
    runtime._wake.set()  # what the listener does on an event, in the same loop turn as stop()
    async with asyncio.timeout(5.0):
        await runtime.stop()
    assert not runtime.ready


async def test_stop_is_not_lost_when_a_refresh_swallows_the_cancel(
    settings: KnowledgeSettings, client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cancel landing inside a Redis command can be lost (seen with redis-py 8 in CI): the
    refresh returns as if never cancelled. stop() must still end the rebuild loop."""
    await KnowledgeStore(client).publish(shop_kb(), author="test")
    runtime = KnowledgeRuntime(settings, encoders=(HashingEncoder(), None))
    await runtime.start()
    entered = asyncio.Event()
    real_live = runtime.store.live

    async def live_swallowing_a_cancel() -> Any:
        entered.set()
        with contextlib.suppress(asyncio.CancelledError):  # what the lost cancel looks like
            await asyncio.sleep(10.0)
        return await real_live()

    monkeypatch.setattr(runtime.store, "live", live_swallowing_a_cancel)
    runtime._wake.set()
    await asyncio.wait_for(entered.wait(), 5.0)
    tasks = list(runtime._tasks)
    async with asyncio.timeout(5.0):
        await runtime.stop()
    assert not runtime.ready and tasks and all(task.done() for task in tasks)


async def test_requests_never_see_a_half_built_index(runtime: KnowledgeRuntime) -> None:
    """While a rebuild is blocked inside the encoder, answers keep coming from the old version."""
    encoder = runtime._encoders[0] if runtime._encoders else None
    assert isinstance(encoder, HashingEncoder)
    old = runtime.service.version
    assert old is not None
    gate = threading.Event()
    encoder.gate = gate
    seen: list[tuple[str | None, bool]] = []
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            d = runtime.service.decide("可以礼品包装吗")
            seen.append((d.kb_version, any(c.entry_id == "gift-wrap" for c in d.candidates)))

    info = await runtime.store.publish(with_gift_wrap(shop_kb()), author="ops")
    asker = threading.Thread(target=ask)
    asker.start()
    await asyncio.sleep(0.3)  # the rebuild is now waiting on the gate
    assert runtime.service.version == old
    gate.set()
    encoder.gate = None
    await runtime.wait_for_version(info.id, timeout=10.0, calibrated=True)
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.to_thread(asker.join)
    assert {v for v, _ in seen} == {old.id, info.id}
    assert all(has_gift == (version == info.id) for version, has_gift in seen)


async def test_rebuilds_embed_only_new_texts_even_after_restart(
    settings: KnowledgeSettings, client: aioredis.Redis
) -> None:
    await KnowledgeStore(client).publish(shop_kb(), author="test")
    first_encoder = HashingEncoder()
    first = KnowledgeRuntime(settings, encoders=(first_encoder, None))
    await first.start()
    await first.stop()
    assert len(first_encoder.encoded) > 100  # entries + calibration questions

    restarted_encoder = HashingEncoder()
    restarted = KnowledgeRuntime(settings, encoders=(restarted_encoder, None))
    await restarted.start()
    assert restarted_encoder.encoded == []  # everything came from the Redis cache
    info = await restarted.store.publish(with_gift_wrap(shop_kb()), author="ops")
    await restarted.wait_for_version(info.id, timeout=10.0, calibrated=True)
    await restarted.stop()
    assert set(restarted_encoder.encoded) == {"可以礼品包装吗", "能包装成礼物吗", "gift wrapping",
                                             "可以,下单备注礼品包装。"}


async def test_runtime_on_the_callers_client_leaves_it_open(
    settings: KnowledgeSettings, client: aioredis.Redis
) -> None:
    await KnowledgeStore(client).publish(shop_kb(), author="test")
    runtime = KnowledgeRuntime(client, settings, encoders=(HashingEncoder(), None))
    assert not runtime.ready
    await runtime.start()
    assert runtime.ready
    candidates = await runtime.service.search_async("可以开发票吗", k=2)
    assert [c.entry_id for c in candidates][:1] == ["invoice"] and len(candidates) == 2
    await runtime.stop()
    assert not runtime.ready
    assert await client.ping()  # the gateway's client is still usable


async def test_embedding_cache_round_trip(client: aioredis.Redis) -> None:
    cache = EmbeddingCache(client, ttl_seconds=3600)
    vector = HashingEncoder().encode(["退货"])[0]
    await cache.store({"m": {"退货": vector}})
    found = await cache.fetch("m", ["退货", "发货"])
    assert list(found) == ["退货"] and (found["退货"] == vector).all()
    assert await cache.fetch("other-model", ["退货"]) == {}


async def test_fresh_install_publishes_the_demo_store(
    settings: KnowledgeSettings, tmp_path: Path
) -> None:
    demo = tmp_path / "demo.yaml"
    demo.write_text(dump_yaml(shop_kb()), encoding="utf-8")
    runtime = KnowledgeRuntime(settings.model_copy(update={"demo_store": demo}),
                               encoders=(HashingEncoder(), None))
    await runtime.start()
    try:
        version = runtime.service.version
        assert version is not None and version.author == "kefu" and version.entries == 6
        assert runtime.service.decide("可以退货吗").kind is DecisionKind.ANSWER
    finally:
        await runtime.stop()


async def test_without_a_live_version_or_demo_the_runtime_starts_empty(
    settings: KnowledgeSettings,
) -> None:
    runtime = KnowledgeRuntime(settings, encoders=(HashingEncoder(), None))
    await runtime.start()
    try:
        assert runtime.service.version is None
        assert runtime.service.decide("可以退货吗").kind is DecisionKind.HANDOFF
        info = await runtime.store.publish(shop_kb(), author="ops")
        await runtime.wait_for_version(info.id, timeout=10.0)
        assert runtime.service.decide("可以退货吗").kind is DecisionKind.ANSWER
    finally:
        await runtime.stop()


@pytest.mark.model
@pytest.mark.slow
async def test_demo_store_publish_reaches_a_running_process_within_2s(redis_url: str) -> None:
    """The real encoder on the bundled demo store: first start publishes it, a publish swaps < 2 s."""
    settings = KnowledgeSettings(redis_url=redis_url)
    assert settings.demo_store.exists()
    runtime = KnowledgeRuntime(settings)
    await runtime.start()  # a fresh Redis: publishes the demo store, embeds every text once
    try:
        demo = runtime.service.index
        assert demo is not None and demo.info is not None and demo.info.author == "kefu"
        recycling = Entry(id="shoe-recycling", question="旧鞋可以回收抵扣吗",
                          variants=("以旧换新怎么参加", "旧跑鞋回收有补贴吗"),
                          answer="寄回任意品牌旧鞋，验收后发放 30 元无门槛券。",
                          category=Category.PRESALE)
        kb = KnowledgeBase(entries=(*demo.kb.entries, recycling))
        other_client = async_client(redis_url)  # another process, e.g. `kefu kb publish`
        other = KnowledgeStore(other_client)
        started = time.monotonic()
        info = await other.publish(kb, author="ops")
        new = await runtime.wait_for_version(info.id, timeout=10.0)
        elapsed = time.monotonic() - started
        decision = runtime.service.decide("以旧换新怎么参加")
        assert decision.entry is not None and decision.entry.entry_id == "shoe-recycling"
        assert elapsed < 2.0, f"publish reached the process after {elapsed:.2f}s"

        # roll back at once, while the new version is being calibrated (several seconds)
        assert new.provisional
        started = time.monotonic()
        await other.rollback(demo.info.id, author="ops")
        back = await runtime.wait_for_version(demo.info.id, timeout=10.0)
        elapsed = time.monotonic() - started
        assert back is demo and elapsed < 2.0, f"rollback reached the process after {elapsed:.2f}s"
        assert await runtime.settle() is demo
        await other.rollback(info.id, author="ops")  # its late calibration was kept
        await runtime.wait_for_version(info.id, timeout=2.0, calibrated=True)
        await other_client.aclose()
    finally:
        await runtime.stop()
