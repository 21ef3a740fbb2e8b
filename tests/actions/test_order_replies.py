"""What the bot tells a verified owner about each kind of demo order, in Chinese and English."""

from __future__ import annotations

from datetime import UTC, datetime

from actions.order_replies import ask_phone_tail, order_details
from kefu.language import Language
from orders import demo_data as demo

NOW = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
ORDERS = {o.order_id: o for o in demo.demo_orders(NOW)}


def zh(order_id: str) -> str:
    return order_details(ORDERS[order_id], Language.ZH, NOW).text


def en(order_id: str) -> str:
    return order_details(ORDERS[order_id], Language.EN, NOW).text


def test_paid_says_when_it_ships_and_delayed_says_sorry() -> None:
    assert "已付款，待发货" in zh(demo.PAID) and "预计 12-08 12:00 前发货" in zh(demo.PAID)
    assert "已超过承诺的发货时间（12-05 12:00）" in zh(demo.DELAYED)
    assert "past the promised shipping date (12-05 12:00)" in en(demo.DELAYED)


def test_presale_gives_the_final_payment_window() -> None:
    assert "已付定金 ¥100.00，尾款 ¥1199.00 请在 12-07 10:00 至 12-09 12:00 之间支付" in zh(
        demo.PRESALE)
    assert "the final ¥1199.00 is due between 12-07 10:00 and 12-09 12:00" in en(demo.PRESALE)


def test_refunds_and_gifts() -> None:
    assert "退款 ¥259.00：退款已完成（已原路退回支付宝）。" in zh(demo.REFUNDED)
    assert "Refund of ¥259.00: completed" in en(demo.REFUNDED)
    assert "赠品「保温杯（满减赠品）」：还未发出。" in zh(demo.GIFT_PENDING)
    assert "已签收" in zh(demo.GIFT_PENDING)
    assert 'Gift "不粘内胆（赠品）": shipped (圆通速递 YT5566778899).' in en(demo.GIFT_SHIPPED)


def test_a_stuck_parcel_is_owned_up_to() -> None:
    assert "物流已有几天没有更新" in zh(demo.STUCK)
    assert "物流已有几天没有更新" not in zh(demo.SHIPPED)


def test_before_verification_only_the_last_four_characters() -> None:
    reply = ask_phone_tail(demo.STUCK, Language.EN)
    assert "…5678" in reply.text and demo.STUCK not in reply.text
    assert reply.buttons == [{"title": "Talk to a person", "payload": "/request_human"}]
