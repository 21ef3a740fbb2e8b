"""At-least-once push delivery of agent and system messages to channels that push (Telegram).

Agent replies, queue positions and rating requests happen outside any shopper request, so
:class:`kefu.conversation.ConversationStore` announces them on the outbound stream
(``kefu.keys.conv_outbound_key``, fields ``conversation`` and ``turn``). An
:class:`OutboundWorker` reads it with one consumer group per channel:

- an entry is acknowledged (XACK) only after the channel accepted the message, so a channel
  outage leaves it pending and it is retried with backoff until it goes through;
- entries of a worker that died mid-delivery are taken over with XAUTOCLAIM once idle;
- the :class:`DeliveryLedger` remembers delivered turn ids, so a retry after a lost
  acknowledgement, or a turn that was also sent in the reply to a request, is not sent twice;
- a permanent refusal (the shopper blocked the bot) is logged and acknowledged, never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from bot.channels.errors import DeliveryRejected
from kefu.conversation import OUTBOUND_MAX_LEN, ConversationStore, Turn
from kefu.keys import conv_outbound_key, gw_delivered_key

logger = logging.getLogger(__name__)

Deliver = Callable[[str, Turn], Awaitable[None]]
"""Sends one turn to the shopper of a conversation; raises a ChannelError when it cannot."""

SENDING_TTL_SECONDS = 120
SENT_TTL_SECONDS = 2 * 24 * 3600

# Drop the "sending" mark only if it is still ours to drop (not already "sent").
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == 'sending' then return redis.call('DEL', KEYS[1]) end
return 0
"""


class DeliveryState(StrEnum):
    """Answer of :meth:`DeliveryLedger.claim`."""

    CLAIMED = "claimed"  # the caller may send the turn now and must call done() or release()
    SENT = "sent"  # the turn was delivered before: skip it
    BUSY = "busy"  # another sender is delivering it right now: look again later


class DeliveryLedger:
    """Which turns a channel delivered, shared by the request path and the outbound worker."""

    def __init__(self, redis: aioredis.Redis, channel: str) -> None:
        self._redis = redis
        self.channel = channel

    async def claim(self, turn_id: str) -> DeliveryState:
        """Reserve the turn for sending; the reservation lapses after two minutes (crash)."""
        key = gw_delivered_key(self.channel, turn_id)
        for _ in range(2):
            if await self._redis.set(key, "sending", nx=True, ex=SENDING_TTL_SECONDS):
                return DeliveryState.CLAIMED
            state = await self._redis.get(key)
            if state == "sent":
                return DeliveryState.SENT
            if state == "sending":
                return DeliveryState.BUSY
        return DeliveryState.BUSY

    async def done(self, turn_id: str) -> None:
        """The shopper has the turn."""
        await self._redis.set(gw_delivered_key(self.channel, turn_id), "sent", ex=SENT_TTL_SECONDS)

    async def release(self, turn_id: str) -> None:
        """Sending failed: let the next attempt claim the turn."""
        await self._redis.eval(_RELEASE_LUA, 1, gw_delivered_key(self.channel, turn_id))


async def stop_task(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait for it to end.

    Cancelling again every second: a cancellation that lands exactly when a Redis read times
    out can surface as a TimeoutError that a retry loop swallows.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    if not task.cancelled() and task.exception() is not None:
        logger.warning("task %s ended with %r", task.get_name(), task.exception())


async def announce(redis: aioredis.Redis, conversation: str, turn_id: str) -> None:
    """Queue an existing turn for push delivery (e.g. a reply the request path failed to send)."""
    await redis.xadd(conv_outbound_key(), {"conversation": conversation, "turn": turn_id},
                     maxlen=OUTBOUND_MAX_LEN, approximate=True)


class OutboundWorker:
    """Delivers the outbound stream's turns of one channel's conversations (``{channel}:*``)."""

    def __init__(self, redis: aioredis.Redis, conversations: ConversationStore, deliver: Deliver,
                 *, channel: str, consumer: str | None = None, batch: int = 20,
                 block_ms: int = 5000, claim_idle_ms: int = 60_000,
                 backoff_seconds: float = 1.0, max_backoff_seconds: float = 60.0) -> None:
        self._redis = redis
        self._conversations = conversations
        self._deliver = deliver
        self._prefix = f"{channel}:"
        self._key = conv_outbound_key()
        self._batch = batch
        self._block_ms = block_ms
        self._claim_idle_ms = claim_idle_ms
        self._backoff = backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._claim_cursor = "0-0"
        self._group_ready = False
        self.group = channel
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.ledger = DeliveryLedger(redis, channel)
        self.delivered = 0
        self.dropped = 0
        self.failures = 0
        self.stopping = False

    async def run(self) -> None:
        """Deliver until stopped; failures back off exponentially (1 s … 60 s)."""
        failed_in_a_row = 0
        while not self.stopping:
            try:
                ok = await self.run_once()
            except Exception:  # Redis hiccup: keep the worker alive
                logger.exception("%s outbound worker failed", self.group)
                ok = False
            if ok:
                failed_in_a_row = 0
                continue
            failed_in_a_row += 1
            delay = min(self._max_backoff, self._backoff * 2 ** (failed_in_a_row - 1))
            await asyncio.sleep(delay * random.uniform(0.75, 1.0))

    async def run_once(self, block_ms: int | None = None) -> bool:
        """One pass: own pending entries, then stale ones of dead workers, then new ones.

        Returns False when a delivery failed and the caller should back off; the entry stays
        pending and the next pass starts with it, so order within the channel is kept.
        """
        await self._ensure_group()
        if not await self._drain(await self._read("0")):
            return False
        if not await self._drain(await self._autoclaim()):
            return False
        block = self._block_ms if block_ms is None else block_ms
        return await self._drain(await self._read(">", block=block))

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self._redis.xgroup_create(self._key, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def _read(self, start: str, block: int | None = None) -> list[tuple[str, Any]]:
        result: Any = await self._redis.xreadgroup(self.group, self.consumer, {self._key: start},
                                                   count=self._batch, block=block)
        streams = result.items() if isinstance(result, dict) else (result or [])
        return [(str(entry_id), fields) for _key, rows in streams for entry_id, fields in rows]

    async def _autoclaim(self) -> list[tuple[str, Any]]:
        result: Any = await self._redis.xautoclaim(
            self._key, self.group, self.consumer, self._claim_idle_ms,
            start_id=self._claim_cursor, count=self._batch)
        self._claim_cursor = str(result[0])
        entries = [(str(entry_id), fields) for entry_id, fields in result[1]]
        if entries:
            logger.info("%s took over %d stale outbound entries", self.consumer, len(entries))
        return entries

    async def _drain(self, entries: list[tuple[str, Any]]) -> bool:
        for entry_id, fields in entries:
            if not await self._process(entry_id, fields or {}):
                return False
        return True

    async def _process(self, entry_id: str, fields: dict[str, str]) -> bool:
        conversation, turn_id = fields.get("conversation", ""), fields.get("turn", "")
        if not conversation.startswith(self._prefix) or not turn_id:
            await self._ack(entry_id)
            return True
        state = await self.ledger.claim(turn_id)
        if state is DeliveryState.SENT:
            await self._ack(entry_id)
            return True
        if state is DeliveryState.BUSY:
            return False
        try:
            await self._send(conversation, turn_id)
        except DeliveryRejected as exc:
            logger.warning("dropping turn %s of %s: %s", turn_id, conversation, exc)
            await self.ledger.done(turn_id)
            self.dropped += 1
        except Exception as exc:
            self.failures += 1
            logger.warning("delivery of turn %s to %s failed (will retry): %s", turn_id,
                           conversation, exc)
            with contextlib.suppress(Exception):
                await self.ledger.release(turn_id)
            return False
        else:
            await self.ledger.done(turn_id)
            self.delivered += 1
        await self._ack(entry_id)
        return True

    async def _send(self, conversation: str, turn_id: str) -> None:
        turn = await self._conversations.turn(conversation, turn_id)
        if turn is None:
            raise DeliveryRejected(f"turn {turn_id} expired before delivery",
                                   channel=self.group)
        await self._deliver(conversation, turn)

    async def _ack(self, entry_id: str) -> None:
        await self._redis.xack(self._key, self.group, entry_id)
