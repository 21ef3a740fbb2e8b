"""Errors of the orders package (a branch of :class:`kefu.errors.KefuError`).

Tree::

    OrdersError                   base → 400
    ├── OrderNotFound             the order system knows no such order → 404
    ├── OrderSystemUnavailable    no answer, or one breaking the contract → 503
    ├── OrderSystemNotConfigured  this kefu has no order system (KEFU_ORDERS_URL unset) → 404
    ├── WorkOrderNotFound         no such work order → 404
    ├── PhotoUnavailable          no photo on the work order, or its channel cannot fetch it → 404
    ├── WorkOrderStateError       its status does not allow this (taken, closed) → 409
    ├── TemplateError             a proactive template naming an unknown variable → 422
    ├── WebhookNotConfigured      the order-event webhook has no secret: closed → 404
    ├── WebhookUnauthorized       no or a wrong signature → 401
    ├── WebhookExpired            a timestamp outside the tolerance (a replay) → 403
    └── EventInProgress           that event id is being handled right now → 503 (Retry-After)
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


class TemplateError(OrdersError):
    """A template naming a variable there is none of, or unreadable braces → 422."""

    status_code = 422
    code = "invalid_template"
    field_names = ("event", "language")

    def __init__(self, message: str, *, event: str, language: str) -> None:
        super().__init__(message)
        self.event = event
        self.language = language


class WebhookNotConfigured(OrdersError):
    """No webhook secret is configured: the webhook is closed."""

    status_code = 404
    code = "order_webhook_not_configured"


class WebhookUnauthorized(OrdersError):
    """The request is not signed with the shared secret."""

    status_code = 401
    code = "bad_signature"

    def headers(self) -> dict[str, str]:  # noqa: D102
        return {"WWW-Authenticate": 'HMAC-SHA256 header="X-Kefu-Signature"'}


class WebhookExpired(OrdersError):
    """Signed, but at a time too far from now (a replay, or the store's clock is off)."""

    status_code = 403
    code = "stale_timestamp"
    field_names = ("skew_seconds",)

    def __init__(self, message: str, *, skew_seconds: int) -> None:
        super().__init__(message)
        self.skew_seconds = skew_seconds


class EventInProgress(OrdersError):
    """The same event id is being handled right now (a concurrent retry): try again shortly."""

    status_code = 503
    code = "event_in_progress"
    field_names = ("event_id",)

    def __init__(self, message: str, *, event_id: str) -> None:
        super().__init__(message)
        self.event_id = event_id

    def headers(self) -> dict[str, str]:  # noqa: D102
        return {"Retry-After": "5"}
