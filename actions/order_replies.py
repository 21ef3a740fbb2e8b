"""What the bot says about orders, in Chinese or English: pure functions of an order and ``now``.

Only :func:`order_details` discloses anything about an order, and the actions call it only once
the shopper is verified (:mod:`orders.verification`); the other replies say what is safe.
Times are shown in the store's time zone.
"""

from __future__ import annotations

from datetime import datetime

from actions.replies import Reply, human_button
from kefu.language import Language
from kefu.settings import store_zone
from orders.models import (
    Gift,
    GiftStatus,
    Order,
    OrderStatus,
    Refund,
    RefundStatus,
    Tracking,
)

TRACKING_EVENTS = 3  # the newest scans shown

_STATUS = {
    OrderStatus.PENDING_PAYMENT: ("待付款", "waiting for payment"),
    OrderStatus.DEPOSIT_PAID: ("预售订单，已付定金", "presale order, deposit paid"),
    OrderStatus.PAID: ("已付款，待发货", "paid, waiting to ship"),
    OrderStatus.SHIPPED: ("已发货", "shipped"),
    OrderStatus.DELIVERED: ("已签收", "delivered"),
    OrderStatus.CANCELLED: ("已取消", "cancelled"),
    OrderStatus.REFUNDING: ("退款中", "refund in progress"),
    OrderStatus.REFUNDED: ("已退款", "refunded"),
}
_REFUND = {
    RefundStatus.REQUESTED: ("已申请，等待商家处理", "requested, waiting for the store"),
    RefundStatus.APPROVED: ("商家已同意，退款处理中", "approved, being paid back"),
    RefundStatus.RETURNED: ("退货已收到，退款处理中", "return received, being paid back"),
    RefundStatus.COMPLETED: ("退款已完成", "completed"),
    RefundStatus.REJECTED: ("商家未同意退款", "declined by the store"),
}
_GIFT = {
    GiftStatus.PENDING: ("还未发出", "not shipped yet"),
    GiftStatus.SHIPPED: ("已发出", "shipped"),
    GiftStatus.DELIVERED: ("已送达", "delivered"),
}


def _pick(lang: Language, zh: str, en: str) -> str:
    return en if lang is Language.EN else zh


def at(moment: datetime) -> str:
    """A time as shoppers read it: month-day hour:minute in the store's zone."""
    return moment.astimezone(store_zone()).strftime("%m-%d %H:%M")


def masked(order_id: str) -> str:
    """The order number as said before verification: only its last four characters."""
    return f"…{order_id[-4:]}"


def ask_order_number(lang: Language) -> Reply:
    """The shopper asked about an order without naming it."""
    return Reply(_pick(lang, "请发送您的订单号（10–20 位数字，或 E 开头的编号），我来帮您查。",
                       "Please send your order number (10–20 digits, or the id starting with E) "
                       "and I'll look it up."))


def ask_phone_tail(order_id: str, lang: Language) -> Reply:
    """The order exists; its details wait for the phone's last four digits."""
    return Reply(_pick(
        lang,
        f"查到了订单 {masked(order_id)}。为保护您的隐私，请回复下单手机号的后四位，"
        "验证后告诉您订单详情。",
        f"I found order {masked(order_id)}. To protect your privacy, please reply with the last "
        "4 digits of the phone number on the order and I'll tell you its details."),
        [human_button(lang)])


def wrong_tail(left: int, lang: Language) -> Reply:
    """The digits did not match; ``left`` tries remain."""
    return Reply(_pick(lang, f"手机尾号不正确，您还可以再试 {left} 次。",
                       f"Those digits don't match. You can try {left} more time(s)."),
                 [human_button(lang)])


def tail_expected(lang: Language) -> Reply:
    """Asked for the phone's last four digits, the shopper sent something else."""
    return Reply(_pick(lang, "请回复下单手机号的后四位（4 位数字），或说“取消”。",
                       "Please reply with the last 4 digits of the phone number on the order, "
                       "or say \"cancel\"."),
                 [human_button(lang)])


def verification_failed(lang: Language) -> Reply:
    """Out of tries: a person checks who the shopper is."""
    return Reply(_pick(lang, "验证没有通过。为保护订单信息，我请人工客服来帮您核实。",
                       "I couldn't verify you, so to protect the order a person will help you."))


def no_order_to_verify(lang: Language) -> Reply:
    """Four digits, but no order was waiting for them."""
    return Reply(_pick(lang, "请先告诉我您要查询的订单号。",
                       "Which order is it? Please send the order number first."))


def order_not_found(order_id: str, lang: Language) -> Reply:
    """No such order; the shopper may have mistyped it."""
    return Reply(_pick(lang, f"没有查到订单 {order_id}，请核对订单号后再发给我，或者转人工客服。",
                       f"I couldn't find order {order_id}. Please check the number and send it "
                       "again, or talk to a person."), [human_button(lang)])


def order_system_down(lang: Language) -> Reply:
    """The order system did not answer."""
    return Reply(_pick(lang, "订单系统暂时查询不到，请稍后再试，或者转人工客服。",
                       "I can't reach the order system right now. Please try again later, or "
                       "talk to a person."), [human_button(lang)])


def order_details(order: Order, lang: Language, now: datetime) -> Reply:
    """Status, when it ships, where the parcel is, the refund and the gift: for the owner only."""
    zh, en = _STATUS[order.status]
    title = order.summary().title
    lines = [_pick(lang, f"订单 {order.order_id}（{title}，¥{order.total}）：{zh}。",
                   f"Order {order.order_id} ({title}, ¥{order.total}): {en}.")]
    lines += _payment_and_shipping(order, lang, now)
    if order.tracking is not None:
        lines += _tracking(order.tracking, lang, now)
    if order.refund is not None:
        lines.append(_refund(order.refund, lang))
    if order.gift is not None:
        lines.append(_gift(order.gift, lang))
    return Reply("\n".join(lines), [human_button(lang)])


def _payment_and_shipping(order: Order, lang: Language, now: datetime) -> list[str]:
    if order.status is OrderStatus.DEPOSIT_PAID and order.final_payment_until is not None:
        start = order.final_payment_from or now
        return [_pick(lang, f"已付定金 ¥{order.paid}，尾款 ¥{order.final_payment_due} 请在 "
                            f"{at(start)} 至 {at(order.final_payment_until)} 之间支付。",
                      f"Deposit ¥{order.paid} paid; the final ¥{order.final_payment_due} is due "
                      f"between {at(start)} and {at(order.final_payment_until)}.")]
    if order.status is OrderStatus.PAID and order.ship_by is not None:
        if order.ship_delayed(now):
            return [_pick(lang, f"很抱歉，订单已超过承诺的发货时间（{at(order.ship_by)}），"
                                "我们已催促仓库尽快发出；需要的话可以转人工客服。",
                          f"Sorry, it is past the promised shipping date ({at(order.ship_by)}). "
                          "We have asked the warehouse to hurry; a person can help if you like.")]
        return [_pick(lang, f"预计 {at(order.ship_by)} 前发货。",
                      f"It will ship by {at(order.ship_by)}.")]
    return []


def _tracking(tracking: Tracking, lang: Language, now: datetime) -> list[str]:
    lines = [_pick(lang, f"{tracking.carrier} 运单号 {tracking.waybill}，最新物流：",
                   f"{tracking.carrier}, waybill {tracking.waybill}. Latest tracking:")]
    lines += [f"· {at(e.at)} {e.location} {e.description}"
              for e in tracking.latest(TRACKING_EVENTS)]
    if tracking.stuck(now):
        lines.append(_pick(lang, "物流已有几天没有更新，我们会联系快递核实。",
                           "The parcel hasn't moved for a few days; we'll check with the carrier."))
    return lines


def _refund(refund: Refund, lang: Language) -> str:
    zh, en = _REFUND[refund.status]
    note = refund.steps[-1].note if refund.steps and refund.steps[-1].note else ""
    return _pick(lang, f"退款 ¥{refund.amount}：{zh}" + (f"（{note}）" if note else "") + "。",
                 f"Refund of ¥{refund.amount}: {en}" + (f" ({note})" if note else "") + ".")


def _gift(gift: Gift, lang: Language) -> str:
    zh, en = _GIFT[gift.status]
    line = _pick(lang, f"赠品「{gift.name}」：{zh}", f"Gift \"{gift.name}\": {en}")
    if gift.tracking is not None:
        line += f"（{gift.tracking.carrier} {gift.tracking.waybill}）" if lang is Language.ZH \
            else f" ({gift.tracking.carrier} {gift.tracking.waybill})"
    return line + _pick(lang, "。", ".")


def unsubscribed(lang: Language) -> Reply:
    """After 退订."""
    return Reply(_pick(lang, "已退订，之后不会再主动给您发送订单提醒。回复“订阅”可以恢复。",
                       "Unsubscribed: no more order updates from us. Reply \"subscribe\" to get "
                       "them again."))


def subscribed(lang: Language) -> Reply:
    """After 订阅."""
    return Reply(_pick(lang, "好的，订单有新进展时会主动通知您。回复“退订”可以停止。",
                       "Okay, we'll tell you when your orders move. Reply \"unsubscribe\" "
                       "to stop."))
