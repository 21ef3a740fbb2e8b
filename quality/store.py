"""The quality records in Redis: rule versions and their audit log, alerts, whispers, clocks.

Keys are built in :mod:`kefu.keys` (the ``qa`` area). Rule versions are immutable JSON documents
numbered by ``INCR`` of the live pointer, saved with a compare-and-set on the version the editor
started from (a Lua script), so two supervisors saving at once cannot overwrite each other.
Alerts are a capped stream (the history behind "alerts by rule") and a pub/sub message (live).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, cast

import redis.asyncio as aioredis

from kefu.keys import (
    qa_alerts_key,
    qa_audit_key,
    qa_events_channel,
    qa_fired_key,
    qa_rules_live_key,
    qa_rules_version_key,
    qa_unanswered_key,
    qa_whispers_key,
)
from quality.errors import NotFound, StaleRules
from quality.models import Alert, AuditEntry, EventKind, QualityEvent, Whisper
from quality.rules import RuleSet, default_rule_set

ALERTS_MAX = 100_000
AUDIT_MAX = 10_000
WHISPER_TTL_SECONDS = 7 * 24 * 3600

# Save a new version only if the live one is still the editor's base. KEYS: live pointer, audit
# stream; ARGV: base version, rule set JSON, version key prefix, audit entry JSON, audit cap. The
# new number is only known here, so both JSON documents carry "version":-1, replaced here.
_SAVE_LUA = """
local live = tonumber(redis.call('GET', KEYS[1]) or '0')
if live ~= tonumber(ARGV[1]) then return -live - 1 end
local version = live + 1
local doc = string.gsub(ARGV[2], '"version":%-1', '"version":' .. version, 1)
redis.call('SET', ARGV[3] .. version, doc)
redis.call('SET', KEYS[1], version)
local entry = string.gsub(ARGV[4], '"version":%-1', '"version":' .. version, 1)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'entry', entry)
return version
"""


class QualityStore:
    """Reads and writes the quality records."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    # --- rules --------------------------------------------------------------------------------

    async def live_version(self) -> int:
        """The live rules version (0: the built-in defaults, nothing saved yet)."""
        raw = await self._redis.get(qa_rules_live_key())
        return int(raw) if raw else 0

    async def rules(self, version: int | None = None) -> RuleSet:
        """A saved version of the rules (default: the live one; 0: the built-in defaults)."""
        version = await self.live_version() if version is None else version
        if version == 0:
            return default_rule_set()
        raw = await self._redis.get(qa_rules_version_key(version))
        if raw is None:
            raise NotFound(f"no rules version {version}")
        return RuleSet.model_validate_json(raw)

    async def save(self, rule_set: RuleSet, base_version: int, entry: AuditEntry) -> RuleSet:
        """Save ``rule_set`` as the next version if ``base_version`` is still live (else 409)."""
        doc = rule_set.model_copy(update={"version": -1}).model_dump_json()
        audit = entry.model_copy(update={"version": -1}).model_dump_json()
        prefix = qa_rules_version_key(0)[:-1]
        result = int(await self._redis.eval(
            _SAVE_LUA, 2, qa_rules_live_key(), qa_audit_key(), base_version, doc, prefix, audit,
            AUDIT_MAX))
        if result < 0:
            live = -result - 1
            raise StaleRules(f"the rules are at version {live}, not {base_version}: reload them",
                             live_version=live)
        return rule_set.model_copy(update={"version": result})

    async def audit(self, count: int = 100) -> list[AuditEntry]:
        """The latest rule changes, newest first."""
        rows = cast(list[tuple[str, dict[str, str]]],
                    await self._redis.xrevrange(qa_audit_key(), count=count))
        return [AuditEntry.model_validate_json(fields["entry"]) for _id, fields in rows]

    # --- alerts and whispers ------------------------------------------------------------------

    async def first_time(self, rule_id: str, subject: str, quiet_seconds: int) -> bool:
        """True once per ``quiet_seconds`` for a rule and a conversation or ticket."""
        if quiet_seconds <= 0:
            return True
        return bool(await self._redis.set(qa_fired_key(rule_id, subject), "1", nx=True,
                                          ex=quiet_seconds))

    async def add_alert(self, alert: Alert) -> Alert:
        """Keep the alert in the stream and push it to live consoles (one round trip)."""
        body = alert.model_dump_json(exclude={"id"})
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(qa_alerts_key(), {"alert": body}, maxlen=ALERTS_MAX, approximate=True)
            results = await pipe.execute()
        stored = alert.model_copy(update={"id": str(results[0])})
        await self.publish(QualityEvent(type=EventKind.ALERT, alert=stored))
        return stored

    async def alerts(self, *, since: datetime | None = None, count: int = 200) -> list[Alert]:
        """Recent alerts, newest first (since ``since`` when given)."""
        low = f"{max(0, int(since.timestamp() * 1000))}-0" if since else "-"  # 1865 → the start
        rows = cast(list[tuple[str, dict[str, str]]],
                    await self._redis.xrevrange(qa_alerts_key(), min=low, count=count))
        return [Alert.model_validate_json(f["alert"]).model_copy(update={"id": i})
                for i, f in rows]

    async def add_whisper(self, whisper: Whisper) -> Whisper:
        """Keep the whisper with its ticket and push it to live consoles."""
        key = qa_whispers_key(whisper.ticket_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, whisper.model_dump_json())
            pipe.expire(key, WHISPER_TTL_SECONDS)
            await pipe.execute()
        await self.publish(QualityEvent(type=EventKind.WHISPER, whisper=whisper))
        return whisper

    async def whispers(self, ticket_id: str) -> list[Whisper]:
        """Whispers on a ticket, oldest first."""
        raw = await self._redis.lrange(qa_whispers_key(ticket_id), 0, -1)
        return [Whisper.model_validate_json(r) for r in raw]

    async def publish(self, event: QualityEvent) -> None:
        """Push an event to every live console (none listening is fine)."""
        await self._redis.publish(qa_events_channel(), event.model_dump_json())

    # --- reply-gap clock ----------------------------------------------------------------------

    async def shopper_waiting(self, conversation_id: str, at: datetime) -> None:
        """The shopper wrote to a person: start the reply clock unless it already runs."""
        await self._redis.hsetnx(qa_unanswered_key(), conversation_id,
                                 str(at.timestamp()))

    async def answered(self, conversation_id: str) -> None:
        """The agent wrote (or the chat closed): stop the reply clock."""
        await self._redis.hdel(qa_unanswered_key(), conversation_id)

    async def unanswered(self) -> dict[str, float]:
        """Conversation → epoch seconds of its oldest unanswered shopper message."""
        raw: dict[Any, Any] = await self._redis.hgetall(qa_unanswered_key())
        return {str(k): float(v) for k, v in raw.items()}


def decode(data: Any) -> QualityEvent | None:
    """A pub/sub payload as an event (``None`` when malformed)."""
    try:
        return QualityEvent.model_validate_json(data)
    except ValueError:
        return None


def dumps(value: Any) -> str:
    """Compact JSON (for SSE frames)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
