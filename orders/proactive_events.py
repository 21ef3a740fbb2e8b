"""What happened to an order, read from its record: the events the store reaches out about.

:func:`events_of` reads an order's record as of a moment (shipment late past its promised date, a
parcel stuck in transit, a presale final payment due in its window, a gift shipped, a refund
completed) by the :class:`Thresholds` the settings configure; :func:`variables` is what a
template may say about the order. Plain functions of the record: no Redis, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from kefu.settings import store_zone
from orders.models import STUCK_AFTER, GiftStatus, Order, OrderStatus, RefundStatus
from orders.settings import OrderSettings


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
    return moment.astimezone(store_zone()).strftime("%m-%d %H:%M") if moment else ""


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

