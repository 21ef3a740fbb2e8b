"""Errors of the orders package (a branch of :class:`kefu.errors.KefuError`).

Tree::

    OrdersError                   base → 400
    ├── OrderNotFound             the order system knows no such order → 404
    ├── OrderSystemUnavailable    no answer, or one breaking the contract → 503
    ├── OrderSystemNotConfigured  this kefu has no order system (KEFU_ORDERS_URL unset) → 404
    ├── WorkOrderNotFound         no such work order → 404
    ├── PhotoUnavailable          no photo on the work order, or its channel cannot fetch it → 404
    └── WorkOrderStateError       its status does not allow this (taken, closed) → 409
"""

from __future__ import annotations

from kefu.errors import KefuError


class OrdersError(KefuError):
    """Base of every orders error."""

    status_code = 400
    code = "orders_error"


class OrderNotFound(OrdersError):
    """No such order in the store's order system."""

    status_code = 404
    code = "order_not_found"
    field_names = ("order_id",)

    def __init__(self, message: str, *, order_id: str) -> None:
        super().__init__(message)
        self.order_id = order_id


class OrderSystemUnavailable(OrdersError):
    """The store's order system is down, slow, refuses our key or breaks the contract."""

    status_code = 503
    code = "order_system_unavailable"

    def headers(self) -> dict[str, str]:  # noqa: D102
        return {"Retry-After": "5"}


class OrderSystemNotConfigured(OrdersError):
    """No order system is configured: there is nothing to look orders up in (not a failure)."""

    status_code = 404
    code = "order_system_not_configured"


class WorkOrderNotFound(OrdersError):
    """No such work order."""

    status_code = 404
    code = "work_order_not_found"
    field_names = ("work_order_id",)

    def __init__(self, message: str, *, work_order_id: str) -> None:
        super().__init__(message)
        self.work_order_id = work_order_id


class PhotoUnavailable(OrdersError):
    """The work order has no photo, or no channel here can fetch it (or the channel failed)."""

    status_code = 404
    code = "photo_unavailable"
    field_names = ("work_order_id",)

    def __init__(self, message: str, *, work_order_id: str) -> None:
        super().__init__(message)
        self.work_order_id = work_order_id


class WorkOrderStateError(OrdersError):
    """The work order is not in a status that allows this (taken already, closed)."""

    status_code = 409
    code = "work_order_state"
    field_names = ("work_order_id", "status")

    def __init__(self, message: str, *, work_order_id: str, status: str) -> None:
        super().__init__(message)
        self.work_order_id = work_order_id
        self.status = status
