from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from kefu.redis import async_client
from knowledge.loader import dump_yaml
from knowledge.models import Category, DecisionKind, Entry, KnowledgeBase
from knowledge.service import (
    EmbeddingCache,
    KnowledgeIndex,
    KnowledgeRuntime,
    KnowledgeService,
    build_index,
)
from knowledge.settings import KnowledgeSettings
from knowledge.store import KnowledgeStore
from tests.knowledge.conftest import CST, DOUBLE11_END, DOUBLE11_START, shop_kb
from tests.knowledge.fakes import HashingEncoder

GIFT_WRAP = Entry(id="gift-wrap", question="可以礼品包装吗", variants=("能包装成礼物吗", "gift wrapping"),
                  answer="可以，下单备注礼品包装。", category=Category.PRESALE)


def with_gift_wrap(kb: KnowledgeBase) -> KnowledgeBase:
    return KnowledgeBase(entries=(*kb.entries, GIFT_WRAP))


# --- service on a fixed index -------------------------------------------------------------------


def test_campaign_entry_answers_only_inside_its_window(shop_index: KnowledgeIndex) -> None:
    service = KnowledgeService(shop_index, settings=KnowledgeSettings())
    during = service.decide("多久发货", at=DOUBLE11_START + timedelta(days=2))
    after = service.decide("多久发货", at=DOUBLE11_END + timedelta(seconds=1))
    before = service.decide("多久发货", at=DOUBLE11_START - timedelta(seconds=1))
    assert during.kind is DecisionKind.ANSWER and during.entry is not None
    assert during.entry.entry_id == "ship-time-d11"
    for decision in (after, before):
        assert decision.entry is not None and decision.entry.entry_id == "ship-time"
        assert "ship-time-d11" not in {c.entry_id for c in decision.candidates}


def test_search_respects_windows_and_k(shop_index: KnowledgeIndex) -> None:
    service = KnowledgeService(shop_index, settings=KnowledgeSettings())
    inside = service.search("双11期间多久发货", at=DOUBLE11_START, k=3)
    outside = service.search("双11期间多久发货", at=DOUBLE11_START - timedelta(days=1), k=3)
    assert len(inside) == 3 and inside[0].entry_id == "ship-time-d11"
    assert "ship-time-d11" not in {c.entry_id for c in outside}
    assert [c.score for c in inside] == sorted((c.score for c in inside), reverse=True)


def test_naive_and_missing_times_use_the_configured_zone(shop_index: KnowledgeIndex) -> None:
    service = KnowledgeService(shop_index, settings=KnowledgeSettings(timezone="Asia/Shanghai"))
    naive = DOUBLE11_START.replace(tzinfo=None)  # midnight in Shanghai = the window's first second
    assert service.decide("双11期间多久发货", at=naive).at == DOUBLE11_START
    decision = service.decide("可以退货吗")
    assert decision.at.utcoffset() == timedelta(hours=8)
    assert abs(decision.at.timestamp() - time.time()) < 5


def test_decisions_name_the_version_and_entries_resolve(shop_index: KnowledgeIndex) -> None:
    service = KnowledgeService(shop_index, settings=KnowledgeSettings())
    decision = service.decide("可以开发票吗", intent="faq", intent_confidence=0.9)
    assert decision.kind is DecisionKind.ANSWER and decision.kb_version is None  # built from a file
    assert decision.candidates[0].signals["intent"] == 0.9
    entry = service.entry("invoice")
    assert entry is not None and entry.answer.startswith("可以")
    assert service.entry("nope") is None


def test_out_of_scope_is_handed_off(shop_index: KnowledgeIndex) -> None:
    service = KnowledgeService(shop_index, settings=KnowledgeSettings())
    decision = service.decide("今天天气怎么样")
    assert decision.kind is DecisionKind.HANDOFF and decision.entry is None


def test_empty_service_hands_everything_off() -> None:
    service = KnowledgeService(settings=KnowledgeSettings())
    decision = service.decide("可以退货吗")
    assert decision.kind is DecisionKind.HANDOFF and decision.reason == "no knowledge base is live"
    assert service.search("可以退货吗") == [] and service.version is None


def test_build_reuses_known_vectors(shop_index: KnowledgeIndex) -> None:
    encoder = HashingEncoder()
    index = build_index(with_gift_wrap(shop_kb()), encoder, vectors=shop_index.vectors)
    assert set(encoder.encoded) == {"可以礼品包装吗", "能包装成礼物吗", "gift wrapping",
                                    "可以,下单备注礼品包装。"}
    assert set(index.new_vectors["fake-ngram"]) == set(encoder.encoded)


# --- runtime on real Redis ----------------------------------------------------------------------

pytest_redis = pytest.mark.redis


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    redis = async_client(redis_url)
    yield redis
    await redis.aclose()


@pytest.fixture
async def runtime(
    settings: KnowledgeSettings, client: aioredis.Redis
) -> AsyncIterator[KnowledgeRuntime]:
    await KnowledgeStore(client).publish(shop_kb(), author="test")
    rt = KnowledgeRuntime(settings, encoders=(HashingEncoder(), None))
    await rt.start()
    yield rt
    await rt.stop()


@pytest_redis
async def test_runtime_serves_the_live_version(runtime: KnowledgeRuntime) -> None:
    live = await runtime.store.live()
    assert live is not None and runtime.service.version == live[0]
    decision = runtime.service.decide("可以退货吗")
    assert decision.kb_version == live[0].id


@pytest_redis
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
    assert calibrated.thresholds.method != first.thresholds.method


@pytest_redis
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


@pytest_redis
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


@pytest_redis
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


@pytest_redis
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


@pytest_redis
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


@pytest_redis
async def test_embedding_cache_round_trip(client: aioredis.Redis) -> None:
    cache = EmbeddingCache(client, ttl_seconds=3600)
    vector = HashingEncoder().encode(["退货"])[0]
    await cache.store({"m": {"退货": vector}})
    found = await cache.fetch("m", ["退货", "发货"])
    assert list(found) == ["退货"] and (found["退货"] == vector).all()
    assert await cache.fetch("other-model", ["退货"]) == {}


@pytest_redis
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


@pytest_redis
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


def test_zone_of_times_in_fixture() -> None:
    assert DOUBLE11_START.tzinfo == CST


@pytest_redis
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
        other = async_client(redis_url)
        started = time.monotonic()
        info = await KnowledgeStore(other).publish(kb, author="ops")
        await runtime.wait_for_version(info.id, timeout=10.0)
        elapsed = time.monotonic() - started
        await other.aclose()
        decision = runtime.service.decide("以旧换新怎么参加")
        assert decision.entry is not None and decision.entry.entry_id == "shoe-recycling"
        assert elapsed < 2.0, f"publish reached the process after {elapsed:.2f}s"
        await runtime.wait_for_version(info.id, timeout=30.0, calibrated=True)
    finally:
        await runtime.stop()
