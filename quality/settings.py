"""Settings of the quality package (env prefix ``KEFU_QA_``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class QualitySettings(BaseSettings):
    """Whether a gateway checks messages, and when old report days are rolled up."""

    model_config = SettingsConfigDict(env_prefix="KEFU_QA_", env_file=".env", extra="ignore")

    # False: no rule check, anger score, alert, block or report counting in this gateway (the
    # benchmark's "QA off"; a store that does not want quality control); the API still answers
    checks: bool = True
    rollup_after_days: int = 7  # report days older than this are rolled up; 0 or less: never
    rollup_every_seconds: float = 3600.0


@lru_cache
def get_settings() -> QualitySettings:
    """The process's settings, read once (tests build their own)."""
    return QualitySettings()
