"""Published knowledge-base versions in Redis: immutable snapshots, a live pointer, an audit trail.

Publishing writes the snapshot, indexes it, moves the live pointer, appends the audit record and
announces the new live version on ``kb_events_channel`` in one MULTI/EXEC transaction, so a reader
never sees a live id without its snapshot and every running process hears of every change. Rollback
moves the live pointer back to an existing snapshot the same way. Snapshots are never modified.

Layout (keys from `kefu.keys`): ``kb_version_key(id)`` hash ``{info, kb}`` (JSON each);
``kb_versions_key()`` sorted set of ids scored by publish time (ms); ``kb_live_key()`` the live id;
``kb_audit_key()`` list of JSON audit records; ``kb_events_channel()`` JSON ``{action, version}``.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, ValidationError
from redis.exceptions import WatchError

from kefu.keys import kb_audit_key, kb_events_channel, kb_live_key, kb_version_key, kb_versions_key
from knowledge.errors import VersionNotFound
from knowledge.models import KnowledgeBase

logger = logging.getLogger(__name__)


class VersionInfo(BaseModel):
    """What identifies and describes one published version."""

    model_config = ConfigDict(frozen=True)

    id: str  # time-based, sorts in publish order: 20251111T120000123Z-1a2b3c
    author: str
    created_at: datetime
    note: str = ""
    entries: int  # number of entries
    tests: int = 0  # number of test questions shipped with it
    parent: str | None = None  # the version that was live when this one was published
    sha: str = ""  # sha256 of the knowledge base's canonical JSON (same content, same sha)


class AuditAction(StrEnum):
    """What an audit record records."""

    PUBLISH = "publish"  # a new version was published and made live
    ROLLBACK = "rollback"  # an older version was made live again


class AuditRecord(BaseModel):
    """One line of the knowledge-base audit trail (other packages may add their own actions)."""

    model_config = ConfigDict(extra="allow")

    action: str
    at: datetime
    author: str = ""
    version: str | None = None  # the version made live
    previous: str | None = None  # the version that was live before
    note: str = ""


class KbEvent(BaseModel):
    """Payload announced on ``kb_events_channel`` when the live version changes."""

    action: AuditAction
    version: str


def new_version_id(now: datetime | None = None) -> str:
    """A readable id that sorts by creation time (millisecond resolution, random tail)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}Z-{secrets.token_hex(3)}"


def kb_sha(kb: KnowledgeBase) -> str:
    """sha256 of the knowledge base's canonical JSON."""
    return text_sha(kb.model_dump_json())


def text_sha(text: str) -> str:
    """sha256 of ``text`` (UTF-8), hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class KnowledgeStore:
    """Reads and writes published versions; every method is one or two Redis round trips.

    Args:
        redis: an asyncio client created with ``decode_responses=True`` (`kefu.redis.async_client`).
    """

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def publish(self, kb: KnowledgeBase, *, author: str, note: str = "") -> VersionInfo:
        """Store ``kb`` as a new immutable version and make it live (atomically, announced)."""
        info = await self._publish(kb, author=author, note=note, only_if_empty=False)
        assert info is not None  # only None when only_if_empty
        return info

    async def publish_if_empty(
        self, kb: KnowledgeBase, *, author: str, note: str = ""
    ) -> VersionInfo | None:
        """Publish ``kb`` only when no version is live yet (first start); ``None`` if one was."""
        return await self._publish(kb, author=author, note=note, only_if_empty=True)

    async def live_id(self) -> str | None:
        """The id of the live version, if any."""
        return cast(str | None, await self._redis.get(kb_live_key()))

    async def live(self) -> tuple[VersionInfo, KnowledgeBase] | None:
        """The live version and its knowledge base, or ``None`` before the first publish."""
        for _ in range(3):  # the pointer may move between the two reads; the snapshot never does
            version_id = await self.live_id()
            if version_id is None:
                return None
            try:
                return await self.get(version_id)
            except VersionNotFound:
                continue
        raise VersionNotFound(version_id or "")

    async def get(self, version_id: str) -> tuple[VersionInfo, KnowledgeBase]:
        """One published version.

        Raises:
            VersionNotFound: no version has that id.
        """
        info_json, kb_json = await self._redis.hmget(kb_version_key(version_id), ["info", "kb"])
        if info_json is None or kb_json is None:
            raise VersionNotFound(version_id)
        info = VersionInfo.model_validate_json(info_json)
        return info, KnowledgeBase.model_validate_json(kb_json)

    async def info(self, version_id: str) -> VersionInfo:
        """The description of one version without its entries.

        Raises:
            VersionNotFound: no version has that id.
        """
        info_json = await self._redis.hget(kb_version_key(version_id), "info")
        if info_json is None:
            raise VersionNotFound(version_id)
        return VersionInfo.model_validate_json(info_json)

    async def versions(self) -> list[VersionInfo]:
        """Every published version, newest first."""
        ids = cast(list[str], await self._redis.zrevrange(kb_versions_key(), 0, -1))
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for version_id in ids:
                pipe.hget(kb_version_key(version_id), "info")
            infos: list[str | None] = await pipe.execute()
        return [VersionInfo.model_validate_json(raw) for raw in infos if raw is not None]

    async def rollback(self, version_id: str, *, author: str, note: str = "") -> VersionInfo:
        """Make an already published version live again (audited and announced).

        Raises:
            VersionNotFound: no version has that id.
        """
        info = await self.info(version_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(kb_live_key())
                    previous = cast(str | None, await pipe.get(kb_live_key()))
                    pipe.multi()  # type: ignore[no-untyped-call]
                    self._make_live(pipe, AuditAction.ROLLBACK, version_id, previous, author, note)
                    await pipe.execute()
                    break
                except WatchError:
                    continue
        logger.info("knowledge base rolled back to %s by %s (was %s)", version_id, author, previous)
        return info

    async def audit(self, limit: int = 100) -> list[AuditRecord]:
        """The latest audit records, newest first (unreadable records are skipped)."""
        raw = cast(list[str], await self._redis.lrange(kb_audit_key(), -limit, -1))
        records: list[AuditRecord] = []
        for item in reversed(raw):
            try:
                records.append(AuditRecord.model_validate_json(item))
            except ValidationError:
                logger.warning("skipping unreadable audit record %r", item[:200])
        return records

    async def _publish(
        self, kb: KnowledgeBase, *, author: str, note: str, only_if_empty: bool
    ) -> VersionInfo | None:
        kb_json = kb.model_dump_json()
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(kb_live_key(), kb_versions_key())
                    parent = cast(str | None, await pipe.get(kb_live_key()))
                    if only_if_empty and parent is not None:
                        return None
                    now = datetime.now(UTC)
                    # Strictly after the newest version, even within the same millisecond:
                    # the list of versions and their ids must keep the order of publishing.
                    newest = cast(list[tuple[str, float]], await pipe.zrevrange(
                        kb_versions_key(), 0, 0, withscores=True))
                    stamp = int(now.timestamp() * 1000)
                    if newest:
                        stamp = max(stamp, int(newest[0][1]) + 1)
                    info = VersionInfo(
                        id=new_version_id(datetime.fromtimestamp(stamp / 1000, UTC)),
                        author=author, created_at=now, note=note, entries=len(kb.entries),
                        tests=len(kb.tests), parent=parent, sha=text_sha(kb_json),
                    )
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.hset(kb_version_key(info.id),
                              mapping={"info": info.model_dump_json(), "kb": kb_json})
                    pipe.zadd(kb_versions_key(), {info.id: stamp})
                    self._make_live(pipe, AuditAction.PUBLISH, info.id, parent, author, note)
                    await pipe.execute()
                    break
                except WatchError:
                    continue
        logger.info("knowledge base %s published by %s (%d entries)", info.id, author, info.entries)
        return info

    @staticmethod
    def _make_live(
        pipe: Any, action: AuditAction, version_id: str, previous: str | None, author: str,
        note: str,
    ) -> None:
        record = AuditRecord(action=action.value, at=datetime.now(UTC), author=author,
                             version=version_id, previous=previous, note=note)
        pipe.set(kb_live_key(), version_id)
        pipe.rpush(kb_audit_key(), record.model_dump_json())
        event = KbEvent(action=action, version=version_id)
        pipe.publish(kb_events_channel(), event.model_dump_json())

