"""Shopper channels in front of the one gateway: Telegram and the embeddable web chat widget.

Each channel only translates: its input becomes a :meth:`bot.gateway.Gateway.handle` call, the
:class:`bot.gateway.Reply` becomes channel messages. Who answers (bot or human) is decided by
the gateway for every channel alike; a conversation is ``{channel}:{chat}``.
"""

from bot.channels.attachments import Attachment, AttachmentDesk, AttachmentKind
from bot.channels.delivery import DeliveryLedger, OutboundWorker
from bot.channels.errors import ChannelError, DeliveryFailed, DeliveryRejected
from bot.channels.telegram import TelegramChannel
from bot.channels.web import WebChat

__all__ = [
    "Attachment",
    "AttachmentDesk",
    "AttachmentKind",
    "ChannelError",
    "DeliveryFailed",
    "DeliveryLedger",
    "DeliveryRejected",
    "OutboundWorker",
    "TelegramChannel",
    "WebChat",
]
