"""Ticket events over Redis pub/sub: every process publishes, every live console subscribes.

Pub/sub is fire-and-forget on purpose: the state lives in the ticket and transcript keys, so a
console that missed events re-reads the queue when it reconnects; events only make it live.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from handoff.models import HandoffEvent
from kefu.keys import handoff_events_channel

logger = logging.getLogger(__name__)


class Subscription:
    """A live feed of handoff events."""

    def __init__(self, pubsub: PubSub) -> None:
        self._pubsub = pubsub

    async def get(self, timeout: float) -> HandoffEvent | None:
        """The next event, or ``None`` when ``timeout`` seconds pass without one."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
            if message is None or message.get("type") != "message":
                continue
            try:
                return HandoffEvent.model_validate_json(message["data"])
            except ValidationError:
                logger.warning("dropping malformed handoff event %r", message["data"])
        return None


class EventBus:
    """Publishes :class:`HandoffEvent` on ``handoff_events_channel`` and subscribes to it."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self.observers: list[Callable[[HandoffEvent], None]] = []
        """Called with each event this process publishes (exactly one process publishes an
        event, so an observer counts it once): quick, synchronous, never raising."""

    async def publish(self, event: HandoffEvent) -> None:
        """Push an event to every subscriber (none listening is fine)."""
        await self._redis.publish(handoff_events_channel(), event.model_dump_json())
        for observe in self.observers:
            observe(event)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        """Listen for events for the duration of the block (one Redis connection)."""
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(handoff_events_channel())
        try:
            yield Subscription(pubsub)
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.unsubscribe()
            await pubsub.aclose()  # type: ignore[no-untyped-call]
