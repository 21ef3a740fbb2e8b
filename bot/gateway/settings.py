"""Settings of the gateway process (``bot`` package)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kefu.settings import PLACEHOLDER_SECRETS

PLACEHOLDER_SECRET = "change-me"
MIN_PRODUCTION_SECRET = 24
_TELEGRAM_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class BotSettings(BaseSettings):
    """Everything the gateway reads from the environment (``KEFU_*``) or ``.env``."""

    model_config = SettingsConfigDict(env_prefix="KEFU_", env_file=".env", extra="ignore")

    env: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    redis_url: str = "redis://127.0.0.1:6379/0"
    rasa_url: str = "http://127.0.0.1:5005"
    # Both secrets are generated at set-up (scripts/setup.sh secrets → .env) and shared with
    # Rasa; a placeholder is refused everywhere. Unset in development, the process makes up one
    # nobody knows: Rasa's API and the action route then stay closed rather than open.
    rasa_token: SecretStr | None = None
    rasa_timeout_seconds: float = 30.0
    # Rasa calls the custom actions on this process (actions/endpoint.py) with this secret in
    # the X-Kefu-Action-Secret header (bot/rasa/endpoints.yml sends KEFU_ACTION_SECRET).
    action_secret: SecretStr | None = None
    # Integrations acting for many shoppers (a store's backend): name → key, sent as
    # "Authorization: Bearer <key>", for conversations on the "api" channel only.
    channel_api_keys: dict[str, SecretStr] = Field(default_factory=dict)
    # Web pages allowed to open the web chat (WebSocket Origin), besides kefu's own host.
    web_origins: list[str] = Field(default_factory=list)
    # Shopper rate limits, shared by every gateway (kefu/limits.py): a burst, then so many a
    # minute; a client address (many shoppers may share one) gets more. 0: no limit.
    sender_rate_per_minute: float = 30.0
    sender_burst: int = 10
    address_rate_per_minute: float = 600.0
    address_burst: int = 120
    body_limit_bytes: int = 64 * 1024  # request bodies (the knowledge upload and Rasa get more)
    redis_wait_seconds: float = 8.0  # how long a shopper's request waits through a Redis restart
    max_message_chars: int = 2000
    # Photos shoppers upload in the web chat (bot/channels/photos.py): the largest taken, and
    # how long Redis keeps one (long enough for the slowest work order's SLA and some slack);
    # also how long the Telegram channel remembers which chat sent a photo (the console fetches
    # a Telegram photo only for its own conversation).
    web_photo_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    web_photo_retention_days: float = Field(default=14.0, gt=0)
    # A conversation's photos per day (the store's, KEFU_TIMEZONE), whatever the message rate
    # allows: how many, and how many bytes in all (past either, 429 until the store's midnight).
    # 0: no such cap.
    web_photo_daily_limit: int = Field(default=20, ge=0)
    web_photo_daily_bytes: int = Field(default=40 * 1024 * 1024, ge=0)
    max_sender_chars: int = 128
    load_knowledge: bool = True  # tests of the HTTP edge alone may switch the model off
    # Shopper channels (bot/channels). Telegram is on when a token is set: webhook mode when a
    # webhook URL is set (the secret is then required), long polling otherwise (development).
    telegram_token: SecretStr | None = None
    telegram_webhook_url: str | None = None  # public https URL that reaches POST /telegram/webhook
    telegram_webhook_secret: SecretStr | None = None  # X-Telegram-Bot-Api-Secret-Token
    telegram_base_url: str | None = None  # Bot API server root; tests point it at a fake server
    # Peak load (bot/gateway/backpressure.py): Rasa calls in flight per process, and how long a
    # message may wait for a slot before the shopper is asked to wait and send again.
    rasa_max_in_flight: int = 16
    rasa_max_wait_seconds: float = 2.0

    @model_validator(mode="after")
    def _enforce_non_default_secrets(self) -> BotSettings:
        named = [("KEFU_RASA_TOKEN", self.rasa_token), ("KEFU_ACTION_SECRET", self.action_secret),
                 *((f"KEFU_CHANNEL_API_KEYS[{n}]", k) for n, k in self.channel_api_keys.items())]
        for name, secret in named:
            if secret is None:
                if self.env == "production" and not name.startswith("KEFU_CHANNEL"):
                    raise ValueError(f"{name} must be set when KEFU_ENV=production")
                continue
            value = secret.get_secret_value()
            if value.strip().lower() in PLACEHOLDER_SECRETS:
                raise ValueError(f"{name} is a placeholder ({value!r}): run `make setup`, which "
                                 "writes generated secrets to .env, or set a real one")
            short = len(value) < MIN_PRODUCTION_SECRET
            if short and (self.env == "production" or name.startswith("KEFU_CHANNEL")):
                raise ValueError(f"{name} must have at least {MIN_PRODUCTION_SECRET} characters")
        return self

    @model_validator(mode="after")
    def _check_telegram_webhook(self) -> BotSettings:
        if self.telegram_webhook_url and self.telegram_token is None:
            raise ValueError("KEFU_TELEGRAM_WEBHOOK_URL needs KEFU_TELEGRAM_TOKEN")
        if self.telegram_webhook_url:
            secret = self.telegram_webhook_secret.get_secret_value() \
                if self.telegram_webhook_secret else ""
            if not _TELEGRAM_SECRET.match(secret) or secret == PLACEHOLDER_SECRET:
                raise ValueError("KEFU_TELEGRAM_WEBHOOK_SECRET must be set in webhook mode "
                                 "(1-256 characters of A-Z a-z 0-9 _ -)")
        return self


@lru_cache
def get_settings() -> BotSettings:
    """The process-wide settings; tests build their own ``BotSettings`` instead."""
    return BotSettings()
