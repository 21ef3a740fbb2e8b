"""What kefu needs of a store's order system: one Protocol, implemented over HTTP or by the demo.

The wire form of the same contract is ``orders/openapi.yaml``, which a store implements on its own
backend; :class:`orders.adapter.HttpOrderSystem` is the client of it. Every method answers
``None`` for "no such order / nothing of that kind" and raises
:class:`orders.errors.OrderSystemUnavailable` when the system cannot tell.
"""

from __future__ import annotations

from typing import Protocol

from orders.models import Gift, Order, OrderSummary, Refund, Tracking


class OrderSystem(Protocol):
    """The five questions kefu asks a store's order system."""

    async def order(self, order_id: str) -> Order | None:
        """One order with its items, amounts, status, tracking, refund and gift."""

    async def orders_of(self, shopper_id: str) -> list[OrderSummary]:
        """A shopper's orders (store account id), newest first."""

    async def tracking(self, order_id: str) -> Tracking | None:
        """The parcel's journey, or ``None`` before it ships."""

    async def refund(self, order_id: str) -> Refund | None:
        """The order's refund, or ``None`` when there is none."""

    async def gift(self, order_id: str) -> Gift | None:
        """The order's free gift, or ``None`` when it has none."""

    async def aclose(self) -> None:
        """Release connections."""
