"""kefu's Redis tracker and lock stores for Rasa 3.6: four round trips a message, none blocking.

Loaded by Rasa from ``bot/rasa/endpoints.yml`` (``type: bot.rasa.stores.…``), in the Rasa venv;
kefu never imports this module (it needs ``rasa``).

Rasa's own Redis stores cost Rasa, the one single-threaded process every message goes through, a
quarter of its CPU at 16 shoppers, and each of their Redis calls is synchronous, so Rasa's event
loop waits on every round trip:

- `RedisTrackerStore` keeps a conversation as one JSON string holding every session. Each message
  reads and replays all of it, then, to save, reads and replays it again, merges, and writes all of
  it back: three full passes over the conversation and three round trips.
- `RedisLockStore` keeps each lock as a JSON string it reads, changes and writes back: seven round
  trips a message, and not atomic, so two Rasa servers can both think they hold a conversation.

`KefuTrackerStore` keeps the events of the conversation's **current session** as a Redis list,
one JSON event per item: reading is one ``LRANGE``; saving appends only the events the message
added, in one script that also checks nobody else wrote meanwhile (then it falls back to Rasa's
merge). When a new session starts (after ``session_expiration_time`` of silence) the older ones
are dropped: Rasa only ever reads the last session, and the whole conversation is kept, for agents,
in kefu's own conversation record. A session is bounded too: past ``max_session_events`` the store
keeps its latest turns behind a session start that sets every slot as it was (what Rasa's own
session start carries over), so reading a conversation, and the policies' walk over its states,
cost the same at turn 300 as at turn 30. kefu's rules look at one turn and its slots never
influence a prediction, so the predictions are the same. `KefuLockStore` keeps each
conversation's tickets in a sorted set changed by scripts: one round trip to take a ticket, one to
give it back, atomic across Rasa servers. Both use ``redis.asyncio``, so Rasa serves other
shoppers while Redis answers.

Keys are kefu's (``kefu/keys.py``): ``kefu:tracker:{sender}`` (list), ``kefu:lock:{sender}``
(sorted set). A conversation stored by Rasa's own store (a JSON string) is read once the old way
and rewritten as a list by its next save.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, LockStore
from rasa.core.tracker_store import RedisTrackerStore, SerializedTrackerAsText, TrackerStore
from rasa.shared.core.constants import ACTION_LISTEN_NAME, ACTION_SESSION_START_NAME
from rasa.shared.core.conversation import Dialogue
from rasa.shared.core.events import ActionExecuted, Event, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker, get_trackers_for_conversation_sessions

logger = logging.getLogger(__name__)

# The tracker list of KEYS[1] becomes ARGV[3..] (ARGV[1] == "replace") or gets them appended, if it
# still holds ARGV[2] events (-1: whatever it holds). Returns the new length, or -1 on a conflict.
_SAVE = """
local kind = redis.call('TYPE', KEYS[1]).ok
local held = 0
if kind == 'list' then held = redis.call('LLEN', KEYS[1]) elseif kind ~= 'none' then held = -2 end
if ARGV[2] ~= '-1' and tonumber(ARGV[2]) ~= held then return -1 end
if ARGV[1] == 'replace' then redis.call('DEL', KEYS[1]) end
local length = held
if ARGV[1] == 'replace' then length = 0 end
for i = 4, #ARGV, 500 do
  length = redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 499, #ARGV)))
end
if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return length
"""

# The stored tracker of KEYS[1]: {1, events...} for kefu's list, {2, json} for Rasa's own string.
_LOAD = """
local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'list' then
  local events = redis.call('LRANGE', KEYS[1], 0, -1)
  table.insert(events, 1, 1)
  return events
elseif kind == 'string' then
  return {2, redis.call('GET', KEYS[1])}
end
return {0}
"""

# Tickets of a conversation's lock: members "{number}:{expires_ms}" scored by number, in KEYS[1].
_EXPIRE_TICKETS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'zset' and kind ~= 'none' then redis.call('DEL', KEYS[1]) end  -- Rasa's own lock
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if tonumber(string.match(member, ':(%d+)$')) < now then redis.call('ZREM', KEYS[1], member) end
end
"""

# Take the next ticket (ARGV[1]: its lifetime in ms): {number, 1 if it is served now}.
_ISSUE = _EXPIRE_TICKETS + """
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local number = 1
if #last > 0 then number = tonumber(last[2]) + 1 end
redis.call('ZADD', KEYS[1], number, number .. ':' .. (now + tonumber(ARGV[1])))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if tonumber(first[2]) == number then return {number, 1} end
return {number, 0}
"""

# Is ticket ARGV[1] served now? 1 yes, 0 not yet, -1 it expired.
_SERVED = _EXPIRE_TICKETS + """
if #redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return -1 end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if tonumber(first[2]) == tonumber(ARGV[1]) then return 1 end
return 0
"""

# Give ticket ARGV[1] back; the lock goes when no one else holds a ticket.
_RELEASE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('DEL', KEYS[1]) end
return 1
"""

_STORED = "_kefu_stored"  # on a tracker: (its events in Redis, the list's length then)
MAX_SESSION_EVENTS = 200  # a longer session keeps its latest turns (about half of these)
POLL_SECONDS = 0.02  # Rasa polls a busy lock every second; a shopper's next message waits less


def _client(host: str | None, port: Any, db: Any, password: str | None) -> aioredis.Redis:
    return aioredis.Redis(host=host or "localhost", port=int(port or 6379), db=int(db or 0),
                          password=password, decode_responses=True)


def _prefix(key_prefix: str | None, family: str) -> str:
    if key_prefix and not str(key_prefix).isalnum():
        raise ValueError(f"key_prefix must be alphanumeric (as Rasa's), not {key_prefix!r}")
    return f"{key_prefix}:{family}:" if key_prefix else f"{family}:"


def bounded(events: list[Event], init: Any, limit: int) -> list[Event]:
    """A session of at most about ``limit`` events that ends as ``events`` does.

    The latest turns (from a user message on, about half the limit) are kept as they are; before
    them, a session start with one ``SlotSet`` per slot set so far, at its value then.
    """
    if len(events) <= limit:
        return events
    cut = next((i for i in range(len(events) - limit // 2, len(events))
                if isinstance(events[i], UserUttered)), None)
    if cut is None or cut == 0:
        return events
    head = init()
    head.recreate_from_dialogue(Dialogue(head.sender_id, events[:cut]))
    slots: dict[str, SlotSet] = {}
    for event in head.applied_events():
        if isinstance(event, SlotSet):
            slots.pop(event.key, None)
            slots[event.key] = event
    at = events[cut].timestamp - 0.001
    start: list[Event] = [ActionExecuted(ACTION_SESSION_START_NAME, timestamp=at),
                          SessionStarted(timestamp=at)]
    start += [SlotSet(e.key, e.value, timestamp=at, metadata=e.metadata) for e in slots.values()]
    start.append(ActionExecuted(ACTION_LISTEN_NAME, timestamp=at))
    return start + events[cut:]


def _session_start(events: list[Event]) -> int | None:
    """Index of the last ``action_session_start`` in ``events``, if any."""
    for index in range(len(events) - 1, -1, -1):
        event = events[index]
        if isinstance(event, ActionExecuted) and event.action_name == ACTION_SESSION_START_NAME:
            return index
    return None


class KefuTrackerStore(TrackerStore, SerializedTrackerAsText):  # type: ignore[misc]
    """The current session's events as a Redis list; a message appends what it added."""

    def __init__(self, domain: Any, host: str | None = "localhost", port: int = 6379,
                 db: int = 0, password: str | None = None, event_broker: Any = None,
                 record_exp: float | None = None, key_prefix: str | None = None,
                 max_session_events: int = MAX_SESSION_EVENTS, **kwargs: Any) -> None:
        super().__init__(domain, event_broker, **kwargs)
        self.max_session_events = int(max_session_events)
        self.red = _client(host, port, db, password)
        self.record_exp = int(record_exp) if record_exp else 0
        self.key_prefix = _prefix(key_prefix, "tracker")
        self._save = self.red.register_script(_SAVE)
        self._load = self.red.register_script(_LOAD)

    async def save(self, tracker: DialogueStateTracker, timeout: float | None = None) -> None:
        """Append the events ``tracker`` gained since it was read or last saved (one round trip).

        The tracker's events up to its last session start are not stored: a new session replaces
        the list. A tracker this store did not read, or a list someone else changed meanwhile, is
        merged with what is stored as Rasa's own store does and written whole.
        """
        await self.stream_events(tracker)
        events = list(tracker.events)
        stored: tuple[int, int] | None = getattr(tracker, _STORED, None)
        if stored is not None:
            new = events[stored[0]:]
            start = _session_start(new)
            mode = "replace" if start is not None else "append"
            written = new[start:] if start is not None else new
            if (stored[1] if mode == "append" else 0) + len(written) > self.max_session_events:
                session = events[_session_start(events) or 0:]
                mode, written = "replace", self._bounded(tracker.sender_id, session)
            length = await self._write(tracker.sender_id, mode, stored[1], written, timeout)
            if length >= 0:
                setattr(tracker, _STORED, (len(events), length))
                return
            logger.warning("tracker of %s changed under its lock; merging", tracker.sender_id)
        prior = await self.retrieve_full_tracker(tracker.sender_id)
        if prior is not None:
            tracker = RedisTrackerStore._merge_trackers(prior, tracker)
            events = list(tracker.events)
        session = self._bounded(tracker.sender_id, events[_session_start(events) or 0:])
        length = await self._write(tracker.sender_id, "replace", -1, session, timeout)
        setattr(tracker, _STORED, (len(events), length))

    def _bounded(self, sender_id: str, session: list[Event]) -> list[Event]:
        return bounded(session, lambda: self.init_tracker(sender_id), self.max_session_events)

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        """The conversation's current session (one round trip), or None."""
        return await self._read(sender_id, all_sessions=False)

    async def retrieve_full_tracker(self, sender_id: str) -> DialogueStateTracker | None:
        """Every session still stored: the current one (older ones of a legacy string too)."""
        return await self._read(sender_id, all_sessions=True)

    async def keys(self) -> list[str]:
        """Sender ids with a stored tracker."""
        found = [key async for key in self.red.scan_iter(match=f"{self.key_prefix}*")]
        return [key.removeprefix(self.key_prefix) for key in found]

    async def _write(self, sender_id: str, mode: str, expected: int, events: list[Event],
                     timeout: float | None) -> int:
        expiry = int(timeout or self.record_exp or 0)
        rows = [json.dumps(event.as_dict()) for event in events]
        length = await self._save(keys=[self.key_prefix + sender_id],
                                  args=[mode, expected, expiry, *rows])
        return int(length)

    async def _read(self, sender_id: str, *, all_sessions: bool) -> DialogueStateTracker | None:
        found = await self._load(keys=[self.key_prefix + sender_id])
        kind = int(found[0])
        if kind == 0:
            return None
        if kind == 2:  # stored by Rasa's RedisTrackerStore: read it as that store did
            tracker = self.deserialise_tracker(sender_id, found[1])
            if tracker is None or all_sessions:
                return tracker
            sessions = get_trackers_for_conversation_sessions(tracker)
            return sessions[-1] if len(sessions) > 1 else tracker
        events = [Event.from_parameters(json.loads(row)) for row in found[1:]]
        tracker = self.init_tracker(sender_id)
        tracker.recreate_from_dialogue(Dialogue(sender_id, events))
        setattr(tracker, _STORED, (len(events), len(events)))
        return tracker


class KefuLockStore(LockStore):  # type: ignore[misc]
    """Ticket locks in a Redis sorted set, changed atomically: one round trip in, one out."""

    def __init__(self, endpoint_config: Any) -> None:
        kwargs = dict(endpoint_config.kwargs)
        self.red = _client(endpoint_config.url, kwargs.get("port"), kwargs.get("db"),
                           kwargs.get("password"))
        self.key_prefix = _prefix(kwargs.get("key_prefix"), "lock")
        self._issue = self.red.register_script(_ISSUE)
        self._served = self.red.register_script(_SERVED)
        self._release = self.red.register_script(_RELEASE)
        super().__init__()

    @asynccontextmanager
    async def lock(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME,
                   wait_time_in_seconds: float = POLL_SECONDS) -> AsyncIterator[TicketLock]:
        """Hold the conversation's lock: messages of one conversation run one at a time, in order.

        Raises:
            LockError: the ticket expired (``lock_lifetime``) before its turn came.
        """
        key = [self.key_prefix + conversation_id]
        number, served = await self._issue(keys=key, args=[int(lock_lifetime * 1000)])
        try:
            while not served:
                await asyncio.sleep(min(wait_time_in_seconds, POLL_SECONDS))
                state = int(await self._served(keys=key, args=[number]))
                if state < 0:
                    raise LockError(f"Could not acquire lock for conversation_id "
                                    f"'{conversation_id}'.")
                served = state
            yield TicketLock(conversation_id)
        finally:
            await self._release(keys=key, args=[number])

    def get_lock(self, conversation_id: str) -> TicketLock | None:
        """Not kept as Rasa's `TicketLock`; :meth:`lock` is the whole interface Rasa uses."""
        raise NotImplementedError("KefuLockStore only offers lock()")

    def delete_lock(self, conversation_id: str) -> None:
        """See :meth:`get_lock`."""
        raise NotImplementedError("KefuLockStore only offers lock()")

    def save_lock(self, lock: TicketLock) -> None:
        """See :meth:`get_lock`."""
        raise NotImplementedError("KefuLockStore only offers lock()")
