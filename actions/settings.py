"""Settings of the action server (env prefix ``KEFU_``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class ActionSettings(BaseSettings):
    """Where the actions find the gateway's knowledge API and Redis."""

    model_config = SettingsConfigDict(env_prefix="KEFU_", extra="ignore")

    gateway_url: str = "http://127.0.0.1:8000"
    redis_url: str = "redis://127.0.0.1:6379/0"
    knowledge_timeout_seconds: float = 10.0


@lru_cache
def get_settings() -> ActionSettings:
    """The process-wide settings, read once from the environment."""
    return ActionSettings()
