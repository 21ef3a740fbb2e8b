"""Errors of the shopper channels (a branch of :class:`bot.gateway.errors.GatewayError`).

Tree::

    GatewayError (bot.gateway.errors)
    └── ChannelError             a channel failed → 502
        ├── DeliveryFailed       transient (network, Telegram 5xx, flood wait too long): retry later
        ├── DeliveryRejected     permanent (bot blocked, chat gone, request refused): do not retry
        ├── WebhookRefused       an update posted to the webhook without the right secret → 403
        ├── UnreadableUpdate     a webhook body that is not a Telegram update → 400
        ├── UnsupportedPhoto     a web chat upload that is not a JPEG, PNG or WebP → 415
        └── PhotoNotFound        no such photo in this conversation (or it expired) → 404

    TooManyRequests (kefu.errors)
    └── PhotoQuotaExceeded       the conversation's photos for today are used up → 429
"""

from __future__ import annotations

from typing import Any

from bot.gateway.errors import GatewayError
from kefu.errors import TooManyRequests


class ChannelError(GatewayError):
    """Base of the channel errors; ``channel`` names the channel (``telegram``, ``web``)."""

    status_code = 502
    code = "channel_error"
    field_names = ("channel",)

    def __init__(self, message: str, *, channel: str) -> None:
        super().__init__(message)
        self.channel = channel


class DeliveryFailed(ChannelError):
    """The message did not reach the shopper this time; sending it again later may work."""

    code = "delivery_failed"

    def __init__(self, message: str, *, channel: str, retry_after: float | None = None) -> None:
        super().__init__(message, channel=channel)
        self.retry_after = retry_after


class DeliveryRejected(ChannelError):
    """The channel refuses this message for good (e.g. the shopper blocked the bot)."""

    code = "delivery_rejected"


class WebhookRefused(ChannelError):
    """An update reached the webhook without the secret the channel registered."""

    status_code = 403
    code = "webhook_refused"


class UnreadableUpdate(ChannelError):
    """The webhook's body is not an update the channel can read."""

    status_code = 400
    code = "unreadable_update"


class UnsupportedPhoto(ChannelError):
    """An upload that is not a JPEG, PNG or WebP picture (judged by its bytes, not its header)."""

    status_code = 415
    code = "unsupported_photo"


class PhotoNotFound(ChannelError):
    """No such photo in this conversation (never uploaded, another shopper's, or expired)."""

    status_code = 404
    code = "photo_not_found"


class PhotoQuotaExceeded(TooManyRequests):
    """The conversation's photos for today are used up.

    ``quota`` is ``count`` or ``bytes``, up to ``limit``; ``retry_after``: seconds until the
    store's next day (the ``Retry-After`` header).
    """

    code = "photo_quota_exceeded"

    def __init__(self, message: str, *, retry_after: int, quota: str, limit: int) -> None:
        super().__init__(message, scope="conversation", retry_after=retry_after)
        self.quota = quota
        self.limit = limit

    def fields(self) -> dict[str, Any]:  # noqa: D102
        return {**super().fields(), "quota": self.quota, "limit": self.limit}
