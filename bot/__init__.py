"""The shopper-facing side: Rasa project data (``bot/rasa``), the gateway, channels and the HTTP app."""

from bot.gateway import Gateway, Mode, OutMessage, Reply

__all__ = ["Gateway", "Mode", "OutMessage", "Reply"]
