"""The store's order system as kefu sees it: the contract, its HTTP adapter, the demo service.

``contract`` (the :class:`OrderSystem` Protocol) and ``openapi.yaml`` (the same contract on the
wire, which a store implements), ``models`` (orders, tracking, refunds, gifts), ``adapter`` (the
httpx client of a store's implementation), ``demo`` + ``demo_data`` (the demo store's order
service ``make run`` starts), ``verification`` (whose order it is), ``api`` (the agents' order
lookup), ``settings``, ``errors``.
"""

from orders.adapter import HttpOrderSystem
from orders.contract import OrderSystem
from orders.errors import OrderNotFound, OrdersError, OrderSystemUnavailable
from orders.models import (
    Gift,
    GiftStatus,
    Item,
    Order,
    OrderStatus,
    OrderSummary,
    Refund,
    RefundStatus,
    Tracking,
    TrackingEvent,
)
from orders.settings import OrderSettings, get_settings

__all__ = [
    "Gift",
    "GiftStatus",
    "HttpOrderSystem",
    "Item",
    "Order",
    "OrderNotFound",
    "OrderSettings",
    "OrderStatus",
    "OrderSummary",
    "OrderSystem",
    "OrderSystemUnavailable",
    "OrdersError",
    "Refund",
    "RefundStatus",
    "Tracking",
    "TrackingEvent",
    "get_settings",
]
