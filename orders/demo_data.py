"""The demo store's orders: one of every kind a shopper asks about, dated relative to now.

Every demo order belongs to the store account ``demo-shopper`` with the phone ``138****8000``
(verify with ``8000``), except ``2026112200077`` (``other-shopper``, ``139****1234``), whose
details the bot must not give away to someone who cannot verify.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from orders.models import (
    Gift,
    GiftStatus,
    Item,
    Order,
    OrderStatus,
    Refund,
    RefundStatus,
    RefundStep,
    Tracking,
    TrackingEvent,
)

SHOPPER = "demo-shopper"
PHONE = "138****8000"
SHIPPED = "2026112012345"  # the example: shipped, moving
PAID = "2026112500011"  # paid yesterday, ships within 48 h
DELAYED = "2026111800022"  # paid, promised to ship two days ago, not shipped
PRESALE = "2026111100033"  # presale deposit paid, final payment window open
REFUNDED = "2026110500044"  # returned and refunded
REFUNDING = "2026112100055"  # refund approved, money on its way
GIFT_PENDING = "2026111900066"  # delivered, its gift not shipped yet
GIFT_SHIPPED = "2026111600088"  # shipped with its gift shipped separately
STUCK = "E2026111512345678"  # no scan for five days
TWO_ITEMS = "2026112300099"  # delivered: a treadmill and a fitness band (after-sale flows)
OTHERS = "2026112200077"  # someone else's order


def _item(sku: str, name: str, price: str, quantity: int = 1) -> Item:
    return Item(sku=sku, name=name, quantity=quantity, unit_price=price)


def _events(start: datetime, scans: list[tuple[float, str, str]]) -> list[TrackingEvent]:
    return [TrackingEvent(at=start + timedelta(hours=h), location=place, description=text)
            for h, place, text in scans]


def demo_orders(now: datetime) -> list[Order]:
    """The demo orders as of ``now`` (an aware UTC datetime)."""
    day = timedelta(days=1)
    shipped_at = now - 2 * day
    return [
        Order(order_id=SHIPPED, shopper_id=SHOPPER, buyer_phone_masked=PHONE,
              status=OrderStatus.SHIPPED, placed_at=now - 3 * day,
              items=[_item("SHOE-RUN-42", "轻跑运动鞋 42码", "399.00")], total="399.00",
              paid="399.00", ship_by=now - 1 * day,
              tracking=Tracking(carrier="顺丰速运", waybill="SF1420938475612", events=_events(
                  shipped_at, [(0, "杭州", "商家已发货，顺丰已揽收"),
                               (6, "杭州转运中心", "快件已到达杭州转运中心"),
                               (20, "上海转运中心", "快件已到达上海转运中心"),
                               (40, "上海浦东新区", "快件正在派送中，派送员王师傅")]))),
        Order(order_id=PAID, shopper_id=SHOPPER, buyer_phone_masked=PHONE,
              status=OrderStatus.PAID, placed_at=now - 1 * day,
              items=[_item("TEE-COT-M", "纯棉圆领T恤 M", "79.00", 2)], total="158.00",
              paid="158.00", ship_by=now + 1 * day),
        Order(order_id=DELAYED, shopper_id=SHOPPER, buyer_phone_masked=PHONE,
              status=OrderStatus.PAID, placed_at=now - 6 * day,
              items=[_item("DOWN-LONG-L", "长款羽绒服 L", "899.00")], total="899.00",
              paid="899.00", ship_by=now - 2 * day),
        Order(order_id=PRESALE, shopper_id=SHOPPER, buyer_phone_masked=PHONE,
              status=OrderStatus.DEPOSIT_PAID, placed_at=now - 12 * day,
              items=[_item("COAT-WOOL-M", "双面羊绒大衣 M（双12预售）", "1299.00")],
              total="1299.00",
              paid="100.00", final_payment_from=now - timedelta(hours=2),
              final_payment_until=now + 2 * day, final_payment_due="1199.00",
              ship_by=now + 5 * day),
        Order(order_id=REFUNDED, shopper_id=SHOPPER, buyer_phone_masked=PHONE,
              status=OrderStatus.REFUNDED, placed_at=now - 20 * day,
              items=[_item("JEANS-SL-30", "修身牛仔裤 30", "259.00")], total="259.00",
              paid="259.00",
              refund=Refund(status=RefundStatus.COMPLETED, amount="259.00", reason="尺码不合适",
                            steps=[RefundStep(at=now - 12 * day, status=RefundStatus.REQUESTED),
                                   RefundStep(at=now - 11 * day, status=RefundStatus.APPROVED),
                                   RefundStep(at=now - 8 * day, status=RefundStatus.RETURNED),
                                   RefundStep(at=now - 7 * day, status=RefundStatus.COMPLETED,
                                              note="已原路退回支付宝")])),
        Order(order_id=REFUNDING, shopper_id=SHOPPER, buyer_phone_masked=PHONE,
              status=OrderStatus.REFUNDING, placed_at=now - 5 * day,
              items=[_item("BAG-CAN-01", "帆布托特包", "129.00")], total="129.00", paid="129.00",
              refund=Refund(status=RefundStatus.APPROVED, amount="129.00", reason="不想要了",
                            steps=[RefundStep(at=now - 2 * day, status=RefundStatus.REQUESTED),
                                   RefundStep(at=now - 1 * day, status=RefundStatus.APPROVED,
                                              note="未发货，退款将在1-3个工作日内到账")])),
        Order(order_id=GIFT_PENDING, shopper_id=SHOPPER, buyer_phone_masked=PHONE,
              status=OrderStatus.DELIVERED, placed_at=now - 7 * day,
              items=[_item("KETTLE-15", "电热水壶 1.5L", "169.00")], total="169.00",
              paid="169.00", ship_by=now - 5 * day,
              tracking=Tracking(carrier="中通快递", waybill="ZT7730112233", events=_events(
                  now - 6 * day, [(0, "广州", "已揽收"), (30, "上海", "已签收，签收人：本人")])),
              gift=Gift(name="保温杯（满减赠品）", status=GiftStatus.PENDING)),
        Order(order_id=GIFT_SHIPPED, shopper_id=SHOPPER, buyer_phone_masked=PHONE,
              status=OrderStatus.SHIPPED, placed_at=now - 4 * day,
              items=[_item("RICE-COOK-3", "智能电饭煲 3L", "459.00")], total="459.00",
              paid="459.00", ship_by=now - 2 * day,
              tracking=Tracking(carrier="京东物流", waybill="JD0098812345", events=_events(
                  now - 3 * day, [(0, "北京", "已揽收"), (18, "北京分拣中心", "已发往上海")])),
              gift=Gift(name="不粘内胆（赠品）", status=GiftStatus.SHIPPED,
                        tracking=Tracking(
                            carrier="圆通速递", waybill="YT5566778899",
                            events=_events(now - 1 * day, [(0, "苏州", "赠品已揽收")])))),
        Order(order_id=STUCK, shopper_id=SHOPPER, buyer_phone_masked=PHONE,
              status=OrderStatus.SHIPPED, placed_at=now - 9 * day,
              items=[_item("YOGA-MAT-6", "瑜伽垫 6mm", "99.00")], total="99.00", paid="99.00",
              ship_by=now - 7 * day,
              tracking=Tracking(carrier="韵达快递", waybill="YD3312456789", events=_events(
                  now - 8 * day, [(0, "义乌", "已揽收"),
                                  (60, "武汉转运中心", "快件已到达武汉转运中心")]))),
        Order(order_id=TWO_ITEMS, shopper_id=SHOPPER, buyer_phone_masked=PHONE,
              status=OrderStatus.DELIVERED, placed_at=now - 10 * day,
              items=[_item("TREAD-T1", "家用折叠跑步机 T1", "2999.00"),
                     _item("BAND-B2", "运动手环 B2", "199.00")], total="3198.00",
              paid="3198.00", ship_by=now - 8 * day,
              tracking=Tracking(carrier="京东物流", waybill="JD0012345678", events=_events(
                  now - 8 * day, [(0, "嘉兴", "已揽收"), (26, "上海", "已签收，签收人：本人")]))),
        Order(order_id=OTHERS, shopper_id="other-shopper", buyer_phone_masked="139****1234",
              status=OrderStatus.SHIPPED, placed_at=now - 2 * day,
              items=[_item("PHONE-CASE", "手机壳", "39.00")], total="39.00", paid="39.00",
              tracking=Tracking(carrier="顺丰速运", waybill="SF9900112233", events=_events(
                  now - 1 * day, [(0, "深圳", "已揽收")]))),
    ]
