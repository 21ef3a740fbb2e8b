"""The shopper-facing side: Rasa project data (``bot/rasa``), gateway, channels, HTTP app.

Imports nothing: Rasa's own venv imports `bot.rasa.components`, and must not pull in the gateway.
"""
