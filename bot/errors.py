"""Errors of the gateway.

Tree::

    GatewayError                 base; carries an HTTP status for the one mapping in bot.app
    ├── InvalidMessage           shopper input rejected (empty, too long, bad payload) → 422
    ├── UpstreamUnavailable      Rasa (or another service) did not answer in time → 503
    └── ChannelError             a channel (Telegram, web chat) failed; see bot/channels/errors.py
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every gateway error."""

    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidMessage(GatewayError):
    """The shopper's message cannot be processed as sent."""

    status_code = 422

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class UpstreamUnavailable(GatewayError):
    """A service behind the gateway is down or too slow; the shopper's message was kept."""

    status_code = 503

    def __init__(self, message: str, *, service: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.service = service
        self.retry_after = retry_after
