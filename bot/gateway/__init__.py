"""The gateway: the one place that decides, for every channel, whether the bot or a person answers.

:class:`Gateway` takes a shopper message from any channel, puts it into the open handoff ticket or
sends it through Rasa (:class:`~bot.gateway.rasa_client.RasaClient`, bounded by
:class:`~bot.gateway.backpressure.Backpressure`), and answers a :class:`Reply`. The shopper HTTP
routes (:mod:`~bot.gateway.api`), the process settings and the gateway's errors live here too;
`bot.app` builds the whole application around it.
"""

from bot.gateway.errors import GatewayError, InvalidMessage, UpstreamUnavailable
from bot.gateway.service import Gateway, HandoffPort, Mode, OutMessage, Reply
from bot.gateway.settings import BotSettings, get_settings

__all__ = [
    "BotSettings",
    "Gateway",
    "GatewayError",
    "HandoffPort",
    "InvalidMessage",
    "Mode",
    "OutMessage",
    "Reply",
    "UpstreamUnavailable",
    "get_settings",
]
