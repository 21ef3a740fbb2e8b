"""The shopper-facing side: Rasa project data (``bot/rasa``), gateway, channels, HTTP app."""

from bot.gateway import Gateway, Mode, OutMessage, Reply

__all__ = ["Gateway", "Mode", "OutMessage", "Reply"]
