"""Errors of the shopper channels (a branch of :class:`bot.errors.GatewayError`).

Tree::

    GatewayError (bot.errors)
    └── ChannelError             a channel could not deliver a message to the shopper
        ├── DeliveryFailed       transient (network, Telegram 5xx, flood wait too long): retry later
        └── DeliveryRejected     permanent (bot blocked, chat gone, request refused): do not retry
"""

from __future__ import annotations

from bot.errors import GatewayError


class ChannelError(GatewayError):
    """Base of the channel errors; ``channel`` names the channel (``telegram``, ``web``)."""

    status_code = 502

    def __init__(self, message: str, *, channel: str) -> None:
        super().__init__(message)
        self.channel = channel


class DeliveryFailed(ChannelError):
    """The message did not reach the shopper this time; sending it again later may work."""

    def __init__(self, message: str, *, channel: str, retry_after: float | None = None) -> None:
        super().__init__(message, channel=channel)
        self.retry_after = retry_after


class DeliveryRejected(ChannelError):
    """The channel refuses this message for good (e.g. the shopper blocked the bot)."""
