"""The order system's records as kefu reads them: the shapes of ``orders/openapi.yaml``.

A store's backend answers with these (``orders.adapter``), the demo order service serves them
(``orders.demo``), the bot and the console read them. Money is in the store's currency as a
decimal string ("199.00"); times are aware UTC datetimes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

STUCK_AFTER = timedelta(days=3)  # no tracking event for this long: the parcel is stuck


class OrderStatus(StrEnum):
    """Where an order is in its life."""

    PENDING_PAYMENT = "pending_payment"  # placed, not paid
    DEPOSIT_PAID = "deposit_paid"  # presale: deposit paid, the final payment is due in a window
    PAID = "paid"  # paid, waiting to ship
    SHIPPED = "shipped"  # handed to the carrier
    DELIVERED = "delivered"  # signed for
    CANCELLED = "cancelled"  # cancelled before shipping
    REFUNDING = "refunding"  # a refund is in progress
    REFUNDED = "refunded"  # the money is back


class RefundStatus(StrEnum):
    """A refund's progress."""

    REQUESTED = "requested"  # the shopper asked
    APPROVED = "approved"  # the store agreed, waiting for the return or the payment provider
    RETURNED = "returned"  # the goods came back, the money is on its way
    COMPLETED = "completed"  # the money is back on the shopper's account
    REJECTED = "rejected"  # the store refused (reason given)


class GiftStatus(StrEnum):
    """A free gift's progress (many promotions ship the gift separately)."""

    PENDING = "pending"  # promised, not shipped yet
    SHIPPED = "shipped"  # on its way (tracking given)
    DELIVERED = "delivered"  # arrived


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Item(_Model):
    """One line of an order."""

    sku: str
    name: str
    quantity: int = Field(ge=1)
    unit_price: str  # decimal string in the store's currency


class TrackingEvent(_Model):
    """One scan of the parcel."""

    at: datetime
    location: str
    description: str


class Tracking(_Model):
    """The parcel's journey; events newest last."""

    carrier: str
    waybill: str
    events: list[TrackingEvent] = Field(default_factory=list)

    def latest(self, count: int = 3) -> list[TrackingEvent]:
        """The newest ``count`` events, newest first."""
        return sorted(self.events, key=lambda e: e.at, reverse=True)[:count]

    def stuck(self, now: datetime, after: timedelta = STUCK_AFTER) -> bool:
        """No scan for ``after``: the parcel has not moved."""
        return bool(self.events) and now - max(e.at for e in self.events) > after


class RefundStep(_Model):
    """One change of a refund's status."""

    at: datetime
    status: RefundStatus
    note: str = ""


class Refund(_Model):
    """A refund of (part of) an order."""

    status: RefundStatus
    amount: str
    reason: str = ""
    steps: list[RefundStep] = Field(default_factory=list)


class Gift(_Model):
    """A free gift that comes with the order."""

    name: str
    status: GiftStatus
    tracking: Tracking | None = None


class OrderSummary(_Model):
    """An order in a shopper's list."""

    order_id: str
    status: OrderStatus
    placed_at: datetime
    total: str
    title: str  # the first item's name, "… and 2 more"


class Order(_Model):
    """Everything the contract tells about one order."""

    order_id: str
    shopper_id: str  # the store account that placed it
    buyer_phone_masked: str  # "138****8000": the last four digits verify the shopper
    status: OrderStatus
    placed_at: datetime
    items: list[Item]
    total: str
    paid: str  # paid so far (presale: the deposit)
    currency: str = "CNY"
    ship_by: datetime | None = None  # the promised shipping date
    final_payment_from: datetime | None = None  # presale final-payment window
    final_payment_until: datetime | None = None
    final_payment_due: str | None = None
    tracking: Tracking | None = None
    refund: Refund | None = None
    gift: Gift | None = None

    @property
    def phone_last4(self) -> str:
        """The last four digits of the buyer's phone."""
        return self.buyer_phone_masked[-4:]

    def ship_delayed(self, now: datetime) -> bool:
        """Paid but not shipped past the promised date."""
        return self.status is OrderStatus.PAID and self.ship_by is not None and now > self.ship_by

    def summary(self) -> OrderSummary:
        """The order as a line of the shopper's list."""
        first = self.items[0].name if self.items else ""
        more = len(self.items) - 1
        return OrderSummary(order_id=self.order_id, status=self.status, placed_at=self.placed_at,
                            total=self.total, title=first + (f" 等{more + 1}件" if more else ""))
