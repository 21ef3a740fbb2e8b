"""The shopper-facing side, in the order a message travels.

- ``bot/channels/``: Telegram and the web chat widget turn shopper input into gateway calls;
- ``bot/gateway/``: the gateway decides bot or human for every channel and talks to Rasa;
- ``bot/rasa/``: the Rasa project (NLU data, rules, domain, the one custom NLU component), how it
  is trained and how its server is started;
- ``bot/app.py``: the application factory that mounts all of it with the knowledge and handoff
  routers; ``bot/cli.py``: ``kefu serve`` and ``kefu chat``.

Imports nothing: Rasa's own venv imports `bot.rasa.components`, and must not pull in the gateway.
"""
