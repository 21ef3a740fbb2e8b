"""Settings of the orders package (env prefix ``KEFU_ORDERS_``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class OrderSettings(BaseSettings):
    """Where the store's order system is and how to call it.

    ``make run`` starts the demo order service and points ``KEFU_ORDERS_URL`` at it; a real store
    sets the URL of its own implementation of ``orders/openapi.yaml`` and the key it issued.
    With no URL the bot has no order system: it offers a person for order questions.
    """

    model_config = SettingsConfigDict(env_prefix="KEFU_ORDERS_", env_file=".env", extra="ignore")

    url: str | None = None  # base URL of the contract, e.g. https://shop.example.com/kefu/v1
    api_key: SecretStr | None = None  # sent as "Authorization: Bearer <key>"
    timeout_seconds: float = 3.0  # a shopper waits for this at most per call
    verify_attempts: int = 3  # wrong phone digits before the bot stops asking and offers a person
    proactive_daily_limit: int = 3  # proactive order messages a conversation gets a day at most


@lru_cache
def get_settings() -> OrderSettings:
    """The process's order settings (tests build their own)."""
    return OrderSettings()
