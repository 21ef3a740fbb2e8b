"""Settings of the orders package (env prefix ``KEFU_ORDERS_``)."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache

from pydantic import Field, SecretStr
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
    # When an order's record counts as an event (the poller and the webhook's "order changed"):
    stuck_after_days: float = Field(default=3.0, gt=0)  # no tracking scan this long: stuck
    ship_delay_grace_hours: float = Field(default=0.0, ge=0)  # past the promised date this long
    poll_seconds: float = Field(default=30.0, gt=0)  # the poller reads watched orders this often
    watch_days: float = Field(default=30.0, gt=0)  # a verified order is watched this long
    # The store's order-event webhook (POST /api/v1/orders/events); unset: the webhook is closed.
    webhook_secret: SecretStr | None = None  # HMAC-SHA256 key shared with the store
    webhook_tolerance_seconds: int = Field(default=300, gt=0)  # older signed timestamps: refused

    @property
    def stuck_after(self) -> timedelta:
        """``stuck_after_days`` as a duration."""
        return timedelta(days=self.stuck_after_days)

    @property
    def ship_delay_grace(self) -> timedelta:
        """``ship_delay_grace_hours`` as a duration."""
        return timedelta(hours=self.ship_delay_grace_hours)


@lru_cache
def get_settings() -> OrderSettings:
    """The process's order settings (tests build their own)."""
    return OrderSettings()
