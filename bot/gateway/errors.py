"""Errors of the gateway (a branch of :class:`kefu.errors.KefuError`).

Tree::

    GatewayError                 base → 500
    ├── InvalidMessage           shopper input rejected (empty, too long, bad payload) → 422
    ├── UpstreamUnavailable      Rasa (or another service) did not answer in time → 503
    ├── ConversationForbidden    not this conversation's token, or a key for another channel → 403
    └── ChannelError             a channel (Telegram, web chat) failed; see bot/channels/errors.py

Each class carries the HTTP status, code and fields the app answers with (mapped once for the
whole app in `kefu.http`).
"""

from __future__ import annotations

from kefu.errors import KefuError


class GatewayError(KefuError):
    """Base of every gateway error."""

    status_code = 500
    code = "gateway_error"


class InvalidMessage(GatewayError):
    """The shopper's message cannot be processed as sent."""

    status_code = 422
    code = "invalid_message"
    field_names = ("field",)

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class UpstreamUnavailable(GatewayError):
    """A service behind the gateway is down or too slow; the shopper's message was kept."""

    status_code = 503
    code = "upstream_unavailable"
    field_names = ("service", "retry_after")

    def __init__(self, message: str, *, service: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.service = service
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:  # noqa: D102
        return {"Retry-After": str(int(self.retry_after + 0.999))} if self.retry_after else {}


class ConversationForbidden(GatewayError):
    """The caller shows a token (or key) that does not open this conversation."""

    status_code = 403
    code = "conversation_forbidden"
    field_names = ("conversation_id",)

    def __init__(self, message: str, *, conversation_id: str) -> None:
        super().__init__(message)
        self.conversation_id = conversation_id
