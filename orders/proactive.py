"""The store reaches out first: order events turned into messages in the shopper's conversation.

:func:`events_of` reads what happened to an order from the order system's own record (shipment
late past its promised date, a parcel stuck in transit, a presale final payment due in its window,
a gift shipped, a refund completed), by the :class:`Thresholds` of the settings (stuck after
``KEFU_ORDERS_STUCK_AFTER_DAYS``, late after ``KEFU_ORDERS_SHIP_DELAY_GRACE_HOURS``).
:class:`ProactiveService` polls the orders that some conversation has verified (and so may hear
about; ``watch``), or hears of them from the store's webhook (:mod:`orders.proactive_webhook`,
which calls :meth:`ProactiveService.tell`), tells each event once per order, in
the conversation's language, from the managers' templates (:class:`Templates`, zh/en with
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
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis

from kefu.conversation import ConversationStore, Role
from kefu.keys import (
    order_watch_key,
    proactive_count_key,
    proactive_optout_key,
    proactive_sent_key,
    proactive_templates_key,
    watched_orders_key,
)
from orders import demo_data
from orders.contract import OrderSystem
from orders.errors import OrdersError, OrderSystemUnavailable
from orders.models import STUCK_AFTER, GiftStatus, Order, OrderStatus, RefundStatus
from orders.settings import OrderSettings

logger = logging.getLogger(__name__)

WATCH_TTL = timedelta(days=30)
SENT_TTL = timedelta(days=30)
STORE_ZONE = ZoneInfo("Asia/Shanghai")


class OrderEvent(StrEnum):
    """Something about an order worth telling its shopper before they ask."""

    SHIP_DELAYED = "ship_delayed"  # paid, not shipped past the promised date
    STUCK_IN_TRANSIT = "stuck_in_transit"  # shipped, no scan for days
    FINAL_PAYMENT_DUE = "final_payment_due"  # presale: the final-payment window is open
    GIFT_SHIPPED = "gift_shipped"  # the order's gift is on its way
    REFUND_COMPLETED = "refund_completed"  # the money is back


@dataclass(frozen=True)
class Thresholds:
    """When an order's record counts as an event (``KEFU_ORDERS_*`` settings)."""

    stuck_after: timedelta = STUCK_AFTER  # no tracking scan for this long: stuck in transit
    ship_grace: timedelta = timedelta(0)  # this long past the promised date: shipment delayed

    @classmethod
    def from_settings(cls, settings: OrderSettings) -> Thresholds:
        """The thresholds the settings configure."""
        return cls(stuck_after=settings.stuck_after, ship_grace=settings.ship_delay_grace)


DEFAULT_THRESHOLDS = Thresholds()


def events_of(order: Order, now: datetime,
              thresholds: Thresholds = DEFAULT_THRESHOLDS) -> list[OrderEvent]:
    """The events an order's record shows as of ``now``."""
    found = []
    if order.ship_delayed(now - thresholds.ship_grace):
        found.append(OrderEvent.SHIP_DELAYED)
    if order.status is OrderStatus.SHIPPED and order.tracking \
            and order.tracking.stuck(now, thresholds.stuck_after):
        found.append(OrderEvent.STUCK_IN_TRANSIT)
    window = (order.final_payment_from, order.final_payment_until)
    if order.status is OrderStatus.DEPOSIT_PAID and window[0] and window[1] \
            and window[0] <= now <= window[1]:
        found.append(OrderEvent.FINAL_PAYMENT_DUE)
    if order.gift and order.gift.status is GiftStatus.SHIPPED:
        found.append(OrderEvent.GIFT_SHIPPED)
    if order.refund and order.refund.status is RefundStatus.COMPLETED:
        found.append(OrderEvent.REFUND_COMPLETED)
    return found


def _at(moment: datetime | None) -> str:
    return moment.astimezone(STORE_ZONE).strftime("%m-%d %H:%M") if moment else ""


def variables(order: Order, now: datetime) -> dict[str, str]:
    """What a template may say about an order."""
    tracking = order.gift.tracking if order.gift and order.gift.tracking else order.tracking
    last_scan = max((e.at for e in order.tracking.events), default=now) if order.tracking else now
    return {
        "order_id": order.order_id, "ship_by": _at(order.ship_by),
        "days": str(max(0, (now - last_scan).days)), "due": order.final_payment_due or "",
        "until": _at(order.final_payment_until),
        "gift": order.gift.name if order.gift else "",
        "carrier": tracking.carrier if tracking else "",
        "waybill": tracking.waybill if tracking else "",
        "amount": order.refund.amount if order.refund else "",
    }


VARIABLES = frozenset({"order_id", "ship_by", "days", "due", "until", "gift", "carrier",
                       "waybill", "amount"})
OPT_OUT_ZH = "回复“退订”不再接收订单提醒。"
OPT_OUT_EN = "Reply \"unsubscribe\" to stop these messages."
DEFAULTS: dict[tuple[OrderEvent, str], str] = {
    (OrderEvent.SHIP_DELAYED, "zh"): "【订单提醒】您的订单 {order_id} 已超过承诺的发货时间"
                                     "（{ship_by}），很抱歉让您久等，我们正在加急处理。",
    (OrderEvent.SHIP_DELAYED, "en"): "[Order update] Your order {order_id} is past its promised "
                                     "shipping date ({ship_by}). Sorry for the wait; we are "
                                     "hurrying it along.",
    (OrderEvent.STUCK_IN_TRANSIT, "zh"): "【物流提醒】您的订单 {order_id} 已 {days} 天没有物流更新"
                                         "（{carrier} {waybill}），我们已联系快递核实。",
    (OrderEvent.STUCK_IN_TRANSIT, "en"): "[Delivery update] Your order {order_id} has not moved "
                                         "for {days} days ({carrier} {waybill}); we are checking "
                                         "with the carrier.",
    (OrderEvent.FINAL_PAYMENT_DUE, "zh"): "【尾款提醒】您的预售订单 {order_id} 尾款 ¥{due} "
                                          "已可支付，请在 {until} 前完成支付。",
    (OrderEvent.FINAL_PAYMENT_DUE, "en"): "[Presale] The final payment of ¥{due} for order "
                                          "{order_id} is open until {until}.",
    (OrderEvent.GIFT_SHIPPED, "zh"): "【赠品提醒】您订单 {order_id} 的赠品「{gift}」已发出"
                                     "（{carrier} {waybill}）。",
    (OrderEvent.GIFT_SHIPPED, "en"): "[Gift] The gift \"{gift}\" of order {order_id} has shipped "
                                     "({carrier} {waybill}).",
    (OrderEvent.REFUND_COMPLETED, "zh"): "【退款提醒】您订单 {order_id} 的退款 ¥{amount} "
                                         "已退回原支付账户。",
    (OrderEvent.REFUND_COMPLETED, "en"): "[Refund] The refund of ¥{amount} for order {order_id} "
                                         "is back on your account.",
}


class TemplateError(OrdersError):
    """A template naming a variable there is none of, or unreadable braces → 422."""

    status_code = 422
    code = "invalid_template"
    field_names = ("event", "language")

    def __init__(self, message: str, *, event: str, language: str) -> None:
        super().__init__(message)
        self.event = event
        self.language = language


def check_template(event: OrderEvent, language: str, text: str) -> None:
    """Refuse a template that would not render (unknown variable, stray brace, empty)."""
    try:
        names = {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
    except ValueError as exc:
        raise TemplateError(f"unreadable braces: {exc}", event=event.value,
                            language=language) from exc
    check_language(event, language)
    unknown = names - VARIABLES
    if unknown:
        raise TemplateError(f"unknown variables {sorted(unknown)} (known: {sorted(VARIABLES)})",
                            event=event.value, language=language)
    if not text.strip():
        raise TemplateError("a template needs some text", event=event.value, language=language)


def check_language(event: OrderEvent, language: str) -> None:
    """Refuse a language there are no templates in (zh and en are)."""
    if language not in ("zh", "en"):
        raise TemplateError(f"no templates in {language!r} (zh, en)", event=event.value,
                            language=language)


class Templates:
    """The proactive messages' wording: the managers' in Redis, else the defaults."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def all(self) -> dict[str, str]:
        """Every template, "{event}:{language}" → text (the managers' where set)."""
        saved = await self._redis.hgetall(proactive_templates_key())
        merged = {f"{e.value}:{lang}": text for (e, lang), text in DEFAULTS.items()}
        merged.update({_s(k): _s(v) for k, v in saved.items()})
        return merged

    async def customised(self) -> list[str]:
        """The "{event}:{language}" the managers have worded (the rest are the defaults)."""
        return sorted(_s(k) for k in await self._redis.hkeys(proactive_templates_key()))

    async def set(self, event: OrderEvent, language: str, text: str) -> None:
        """A manager's wording (checked first)."""
        check_template(event, language, text)
        await self._redis.hset(proactive_templates_key(), f"{event.value}:{language}", text)

    async def reset(self, event: OrderEvent, language: str) -> str:
        """Back to the default wording; the default."""
        check_language(event, language)
        await self._redis.hdel(proactive_templates_key(), f"{event.value}:{language}")
        return DEFAULTS[(event, language)]

    async def render(self, event: OrderEvent, language: str, values: Mapping[str, str]) -> str:
        """The message for one event, with the opt-out line."""
        lang = "en" if language == "en" else "zh"
        return compose((await self.all())[f"{event.value}:{lang}"], lang, values)


def compose(text: str, language: str, values: Mapping[str, str]) -> str:
    """A template filled in, with the opt-out line of its language."""
    body = text.format_map(dict(values)).rstrip()
    return f"{body} {OPT_OUT_EN}" if language == "en" else body + OPT_OUT_ZH


PREVIEW_ORDERS = {OrderEvent.SHIP_DELAYED: demo_data.DELAYED,
                  OrderEvent.STUCK_IN_TRANSIT: demo_data.STUCK,
                  OrderEvent.FINAL_PAYMENT_DUE: demo_data.PRESALE,
                  OrderEvent.GIFT_SHIPPED: demo_data.GIFT_SHIPPED,
                  OrderEvent.REFUND_COMPLETED: demo_data.REFUNDED}


def preview(event: OrderEvent, language: str, text: str, now: datetime) -> tuple[str, str]:
    """How ``text`` reads for the demo store's order of that event: (order id, message)."""
    check_template(event, language, text)
    order_id = PREVIEW_ORDERS[event]
    order = next(o for o in demo_data.demo_orders(now) if o.order_id == order_id)
    return order_id, compose(text, language, variables(order, now))


def _s(value: bytes | str) -> str:
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
        for order_id in sorted(_s(o) for o in await self._redis.smembers(watched_orders_key())):
            watchers = [_s(c) for c in await self._redis.smembers(order_watch_key(order_id))]
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

    async def tell(self, order: Order, events: list[OrderEvent] | None = None) -> list[Sent]:
        """Tell the order's watchers ``events`` (default: what its record shows); what was sent.

        Each event goes once per order and conversation, whoever calls (the poller, the webhook).
        """
        now = self._clock()
        watchers = sorted(_s(c) for c in await self._redis.smembers(
            order_watch_key(order.order_id)))
        sent = []
        for event in events_of(order, now, self._thresholds) if events is None else events:
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
