"""The store reaches out first: order events turned into messages in the shopper's conversation.

:func:`~orders.proactive_events.events_of` reads what happened to an order from the order
system's own record, by the :class:`Thresholds` of the settings (``orders.proactive_events``);
the wording is the managers' templates (``orders.proactive_templates``).
:class:`ProactiveService` polls the orders that some conversation has verified (and so may hear
about; ``watch``), or hears of them from the store's webhook (:mod:`orders.proactive_webhook`,
which calls :meth:`ProactiveService.tell`), tells each event once per order, in the
conversation's language, from the managers' templates (:class:`Templates`, zh/en with
variables), at most ``daily_limit`` a day per conversation, never to one that said 退订, and only
into conversations the shopper already has: the message is a system turn of that conversation,
which reaches the web chat live and Telegram through the outbound stream, and stays in the
transcript agents read.

``python -m orders.proactive`` runs the poller as its own process (``make run`` starts it under
supervisord); several may run, each event is claimed once in Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from kefu.conversation import ConversationStore, Role
from kefu.keys import (
    order_watch_key,
    proactive_count_key,
    proactive_optout_key,
    proactive_sent_key,
    watched_orders_key,
)
from orders.contract import OrderSystem
from orders.errors import OrderSystemUnavailable, TemplateError
from orders.models import Order
from orders.proactive_events import (
    DEFAULT_THRESHOLDS,
    OrderEvent,
    Thresholds,
    events_of,
    variables,
)
from orders.proactive_templates import (
    DEFAULTS,
    VARIABLES,
    Templates,
    check_template,
    preview,
)
from orders.settings import OrderSettings

__all__ = [
    "DEFAULTS",
    "VARIABLES",
    "OrderEvent",
    "ProactiveService",
    "Sent",
    "TemplateError",
    "Templates",
    "Thresholds",
    "check_template",
    "events_of",
    "preview",
    "variables",
]

logger = logging.getLogger(__name__)

WATCH_TTL = timedelta(days=30)
SENT_TTL = timedelta(days=30)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class Sent:
    """One proactive message that went out."""

    conversation_id: str
    order_id: str
    event: OrderEvent
    text: str


class ProactiveService:
    """Watches verified orders and tells their conversations what changed."""

    def __init__(self, redis: aioredis.Redis, conversations: ConversationStore,
                 system: OrderSystem | None, *, daily_limit: int = 3,
                 thresholds: Thresholds = DEFAULT_THRESHOLDS,
                 watch_ttl: timedelta = WATCH_TTL,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._redis = redis
        self._conversations = conversations
        self._system = system
        self._daily_limit = daily_limit
        self._thresholds = thresholds
        self._watch_ttl = watch_ttl
        self._clock = clock
        self.templates = Templates(redis)

    @classmethod
    def from_settings(cls, redis: aioredis.Redis, conversations: ConversationStore,
                      system: OrderSystem | None, settings: OrderSettings) -> ProactiveService:
        """The service as the settings configure it (limit, thresholds, how long a watch lasts)."""
        return cls(redis, conversations, system, daily_limit=settings.proactive_daily_limit,
                   thresholds=Thresholds.from_settings(settings),
                   watch_ttl=timedelta(days=settings.watch_days))

    @property
    def system(self) -> OrderSystem | None:
        """The order system the events are read from (``None``: none configured)."""
        return self._system

    async def watch(self, order_id: str, conversation_id: str) -> None:
        """The conversation verified this order: it may hear about it."""
        ttl = int(self._watch_ttl.total_seconds())
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.sadd(order_watch_key(order_id), conversation_id)
            pipe.expire(order_watch_key(order_id), ttl)
            pipe.sadd(watched_orders_key(), order_id)
            await pipe.execute()

    async def opt_out(self, conversation_id: str) -> None:
        """退订: no more proactive messages for this conversation."""
        await self._redis.sadd(proactive_optout_key(), conversation_id)

    async def opt_in(self, conversation_id: str) -> None:
        """订阅: proactive messages again."""
        await self._redis.srem(proactive_optout_key(), conversation_id)

    async def opted_out(self, conversation_id: str) -> bool:
        """Whether the conversation said 退订."""
        return bool(await self._redis.sismember(proactive_optout_key(), conversation_id))

    async def tick(self) -> list[Sent]:
        """Look at every watched order once; tell what is new. What was sent."""
        if self._system is None:
            return []
        sent: list[Sent] = []
        for order_id in sorted(_text(o) for o in await self._redis.smembers(watched_orders_key())):
            watchers = [_text(c) for c in await self._redis.smembers(order_watch_key(order_id))]
            if not watchers:
                await self._redis.srem(watched_orders_key(), order_id)
                continue
            try:
                order = await self._system.order(order_id)
            except OrderSystemUnavailable as exc:
                logger.warning("order %s not checked: %s", order_id, exc)
                continue
            if order is not None:
                sent += await self.tell(order)
        return sent

    def shown(self, order: Order) -> list[OrderEvent]:
        """The events the order's record shows now, by this service's thresholds."""
        return events_of(order, self._clock(), self._thresholds)

    async def tell(self, order: Order, events: list[OrderEvent] | None = None) -> list[Sent]:
        """Tell the order's watchers ``events`` (default: what its record shows); what was sent.

        Each event goes once per order and conversation, whoever calls (the poller, the webhook).
        """
        now = self._clock()
        watchers = sorted(_text(c) for c in await self._redis.smembers(
            order_watch_key(order.order_id)))
        sent = []
        for event in self.shown(order) if events is None else events:
            for conversation in watchers:
                key = proactive_sent_key(order.order_id, event.value, conversation)
                if not await self._redis.set(key, "1", nx=True,
                                             ex=int(SENT_TTL.total_seconds())):
                    continue  # told before (or by another poller)
                text = await self._send(conversation, order, event, now)
                if text is not None:
                    sent.append(Sent(conversation, order.order_id, event, text))
        return sent

    async def _send(self, conversation: str, order: Order, event: OrderEvent,
                    now: datetime) -> str | None:
        if await self.opted_out(conversation):
            logger.info("%s opted out: %s of %s not sent", conversation, event.value,
                        order.order_id)
            return None
        count_key = proactive_count_key(conversation)
        count = int(await self._redis.incr(count_key))
        if count == 1:
            await self._redis.expire(count_key, 24 * 3600)
        if count > self._daily_limit:
            logger.info("%s over its daily limit: %s of %s not sent", conversation, event.value,
                        order.order_id)
            return None
        language = (await self._conversations.profile(conversation)).get("language") or "zh"
        text = await self.templates.render(event, language, variables(order, now))
        await self._conversations.append(conversation, Role.SYSTEM, text, meta={
            "proactive": event.value, "order_id": order.order_id})
        logger.info("told %s: %s of %s", conversation, event.value, order.order_id)
        return text

    async def run(self, interval: float, stop: asyncio.Event) -> None:
        """Poll every ``interval`` seconds until ``stop`` is set."""
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:  # a poller that dies tells nobody anything
                logger.exception("proactive poll failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)


def main(argv: list[str] | None = None) -> int:
    """``python -m orders.proactive``: poll the watched orders until stopped."""
    import os
    import signal

    from kefu.redis import async_client
    from orders.adapter import HttpOrderSystem
    from orders.settings import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(description="kefu's proactive order messages")
    parser.add_argument("--interval", type=float, default=settings.poll_seconds)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    async def go() -> None:
        redis = async_client(os.environ.get("KEFU_REDIS_URL", "redis://127.0.0.1:6379/0"))
        system = HttpOrderSystem.from_settings(settings)
        service = ProactiveService.from_settings(redis, ConversationStore(redis), system, settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await service.run(args.interval, stop)
        finally:
            if system is not None:
                await system.aclose()
            await redis.aclose()

    asyncio.run(go())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
