from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, tzinfo

import pytest
import redis.asyncio as aioredis

from kefu.keys import kb_audit_key, kb_events_channel, kb_live_key
from kefu.redis import async_client
from knowledge import store as store_module
from knowledge.errors import VersionNotFound
from knowledge.models import Category, Entry, KnowledgeBase, TestQuestion
from knowledge.store import AuditAction, KbEvent, KnowledgeStore, kb_sha, new_version_id

pytestmark = pytest.mark.redis


def kb(*answers: str) -> KnowledgeBase:
    return KnowledgeBase(
        entries=tuple(Entry(id=f"e{i}", question=f"问题{i}", answer=a, category=Category.PRESALE)
                      for i, a in enumerate(answers)),
        tests=(TestQuestion(text="问题0?", expected="e0"),),
    )


@pytest.fixture
def store(client: aioredis.Redis) -> KnowledgeStore:
    return KnowledgeStore(client)


async def test_nothing_live_before_the_first_publish(store: KnowledgeStore) -> None:
    assert await store.live() is None
    assert await store.versions() == []
    assert await store.audit() == []


async def test_publish_makes_a_live_snapshot_with_parent_chain(store: KnowledgeStore) -> None:
    first = await store.publish(kb("a"), author="alice", note="first")
    second = await store.publish(kb("a", "b"), author="bob")
    assert (first.parent, second.parent) == (None, first.id)
    assert (second.entries, second.tests, second.author) == (2, 1, "bob")
    assert second.sha == kb_sha(kb("a", "b")) != first.sha
    live = await store.live()
    assert live is not None
    assert live[0] == second and live[1] == kb("a", "b")
    assert [v.id for v in await store.versions()] == [second.id, first.id]
    assert await store.get(first.id) == (first, kb("a"))


async def test_versions_published_in_one_millisecond_keep_their_order(
        store: KnowledgeStore, monkeypatch: pytest.MonkeyPatch) -> None:
    class FrozenClock(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> FrozenClock:
            return cls(2026, 11, 11, 0, 0, 0, 123000, tzinfo=UTC)

    monkeypatch.setattr(store_module, "datetime", FrozenClock)
    published = [await store.publish(kb(*"abc"[: n + 1]), author="alice") for n in range(3)]
    ids = [v.id for v in published]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert [v.id for v in await store.versions()] == ids[::-1]
    assert [v.parent for v in published] == [None, ids[0], ids[1]]


async def test_version_ids_sort_by_time() -> None:
    ids = [new_version_id() for _ in range(50)]
    assert len(set(ids)) == 50
    stamps = [i.split("-")[0] for i in ids]
    assert stamps == sorted(stamps)


async def test_rollback_makes_an_old_version_live_and_is_audited(store: KnowledgeStore) -> None:
    first = await store.publish(kb("a"), author="alice")
    second = await store.publish(kb("b"), author="alice")
    back = await store.rollback(first.id, author="carol", note="b was wrong")
    assert back == first
    live = await store.live()
    assert live is not None and live[0].id == first.id and live[1] == kb("a")
    assert len(await store.versions()) == 2  # rollback does not create or delete versions
    records = await store.audit()
    assert [(r.action, r.version, r.previous, r.author) for r in records] == [
        ("rollback", first.id, second.id, "carol"),
        ("publish", second.id, first.id, "alice"),
        ("publish", first.id, None, "alice"),
    ]
    assert records[0].note == "b was wrong"


async def test_unknown_versions_are_refused(store: KnowledgeStore) -> None:
    await store.publish(kb("a"), author="alice")
    with pytest.raises(VersionNotFound) as info:
        await store.rollback("19990101T000000000Z-000000", author="x")
    assert info.value.version_id == "19990101T000000000Z-000000"
    with pytest.raises(VersionNotFound):
        await store.get("nope")
    assert len(await store.audit()) == 1


async def test_publish_if_empty_only_publishes_once(store: KnowledgeStore) -> None:
    first = await store.publish_if_empty(kb("demo"), author="system")
    assert first is not None
    assert await store.publish_if_empty(kb("other"), author="system") is None
    live = await store.live()
    assert live is not None and live[0].id == first.id


async def test_publish_and_rollback_are_announced(
    store: KnowledgeStore, client: aioredis.Redis
) -> None:
    pubsub = client.pubsub()
    await pubsub.subscribe(kb_events_channel())
    await pubsub.get_message(timeout=1.0)  # subscribe confirmation
    first = await store.publish(kb("a"), author="alice")
    await store.publish(kb("b"), author="alice")
    await store.rollback(first.id, author="alice")
    events = []
    while len(events) < 3:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2.0)
        assert message is not None, f"only {len(events)} events arrived"
        events.append(KbEvent.model_validate_json(message["data"]))
    await pubsub.aclose()
    assert [e.action for e in events] == [AuditAction.PUBLISH, AuditAction.PUBLISH,
                                          AuditAction.ROLLBACK]
    assert events[2].version == first.id


async def test_concurrent_publishes_form_one_chain(redis_url: str) -> None:
    clients = [async_client(redis_url) for _ in range(8)]
    try:
        infos = await asyncio.gather(*(KnowledgeStore(c).publish(kb(f"v{i}"), author=f"p{i}")
                                       for i, c in enumerate(clients)))
        parents = [i.parent for i in infos]
        ids = {i.id for i in infos}
        assert parents.count(None) == 1
        assert {p for p in parents if p is not None} <= ids
        assert len(set(parents)) == 8  # nobody published on top of the same parent twice
        heads = ids - set(parents)
        live = await KnowledgeStore(clients[0]).live()
        assert live is not None and heads == {live[0].id}
    finally:
        for c in clients:
            await c.aclose()


async def test_readers_never_see_a_live_id_without_its_snapshot(
    store: KnowledgeStore, client: aioredis.Redis, redis_url: str
) -> None:
    await store.publish(kb("start"), author="a")
    reader_client = async_client(redis_url)
    reader = KnowledgeStore(reader_client)
    stop = asyncio.Event()
    seen: set[str] = set()

    async def read() -> None:
        while not stop.is_set():
            live_id = await reader_client.get(kb_live_key())
            assert live_id is not None
            info, _ = await reader.get(live_id)  # raises VersionNotFound if not atomic
            seen.add(info.id)
            await asyncio.sleep(0)

    task = asyncio.create_task(read())
    for i in range(30):
        await store.publish(kb(f"v{i}"), author="a")
    stop.set()
    await task
    await reader_client.aclose()
    assert len(seen) > 1


async def test_unreadable_audit_records_are_skipped(
    store: KnowledgeStore, client: aioredis.Redis
) -> None:
    await store.publish(kb("a"), author="alice")
    await client.rpush(kb_audit_key(), "not json", json.dumps({"action": "override",
                                                                "at": "2025-01-01T00:00:00Z",
                                                                "reason": "agent fixed it"}))
    records = await store.audit()
    assert [r.action for r in records] == ["override", "publish"]
    assert records[0].model_extra == {"reason": "agent fixed it"}
