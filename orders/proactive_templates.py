"""The proactive messages' wording: zh/en templates with variables, the managers' in Redis.

Defaults in the code (:data:`DEFAULTS`), the managers' wording in a Redis hash
(:class:`Templates`); a template may name only :data:`VARIABLES` (:func:`check_template`, else
:class:`TemplateError`, 422). :func:`preview` fills a draft for the demo store's order of its event.
Every message ends with how to stop them (退订 / unsubscribe).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from datetime import datetime

import redis.asyncio as aioredis

from kefu.keys import proactive_templates_key
from orders import demo_data
from orders.errors import TemplateError
from orders.proactive_events import OrderEvent, variables

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


def check_template(event: OrderEvent, language: str, text: str) -> None:
    """Refuse a template that would not render (unknown variable, stray brace, empty).

    A variable is a bare ``{name}``: no format spec or conversion (``{order_id:>999999999}``
    would render a gigabyte).
    """
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(text)
                  if f is not None]
    except ValueError as exc:
        raise TemplateError(f"unreadable braces: {exc}", event=event.value,
                            language=language) from exc
    check_language(event, language)
    dressed = sorted({f for f, spec, conv in fields if spec or conv})
    if dressed:
        raise TemplateError(f"write variables as {{name}} only, without ':' or '!': {dressed}",
                            event=event.value, language=language)
    names = {f for f, _, _ in fields}
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
