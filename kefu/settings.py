"""Settings of the ``kefu`` package itself (env prefix ``KEFU_``): data kept below every package."""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "change_me", "secret", "password",
                                 "token"})
"""Values a shared secret may never have, in development too: what every copy starts with."""


class KefuSettings(BaseSettings):
    """What the shared records below every package read from the environment or ``.env``."""

    model_config = SettingsConfigDict(env_prefix="KEFU_", env_file=".env", extra="ignore")

    # Questions the bot could not handle (kefu.escalations) are kept this long for the knowledge
    # team, then trimmed at the next write; phone and ID numbers in them are masked either way.
    escalations_retention_days: float = Field(default=90.0, gt=0)
    # The store's time zone (IANA name): the days and hours people mean — delivery slots, order
    # times in replies and proactive messages, service hours, report days, a photo quota's day,
    # naive times typed by knowledge managers. One setting for all of them (``KEFU_TIMEZONE``).
    timezone: str = "Asia/Shanghai"

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        return known_timezone(value)


def known_timezone(value: str) -> str:
    """``value`` if it names a time zone; a settings validator, so a typo stops the start.

    Raises:
        ValueError: no such zone (pydantic reports it as the setting's error).
    """
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


@lru_cache
def get_settings() -> KefuSettings:
    """The process-wide settings; tests build their own ``KefuSettings`` instead."""
    return KefuSettings()


def store_zone() -> ZoneInfo:
    """The store's time zone (``KEFU_TIMEZONE``)."""
    return ZoneInfo(get_settings().timezone)
