"""Settings of the gateway process (``bot`` package)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRET = "change-me"


class BotSettings(BaseSettings):
    """Everything the gateway reads from the environment (``KEFU_*``) or ``.env``."""

    model_config = SettingsConfigDict(env_prefix="KEFU_", env_file=".env", extra="ignore")

    env: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    redis_url: str = "redis://127.0.0.1:6379/0"
    rasa_url: str = "http://127.0.0.1:5005"
    rasa_token: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    rasa_timeout_seconds: float = 30.0
    max_message_chars: int = 2000
    max_sender_chars: int = 128
    load_knowledge: bool = True  # tests of the HTTP edge alone may switch the model off

    @model_validator(mode="after")
    def _enforce_non_default_secrets(self) -> BotSettings:
        if self.env == "production" and self.rasa_token.get_secret_value() == PLACEHOLDER_SECRET:
            raise ValueError("KEFU_RASA_TOKEN must be set to a real secret when KEFU_ENV=production")
        return self


@lru_cache
def get_settings() -> BotSettings:
    """The process-wide settings; tests build their own ``BotSettings`` instead."""
    return BotSettings()
