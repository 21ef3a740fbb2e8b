"""Settings of the handoff package (env prefix ``KEFU_HANDOFF_``; Redis from ``KEFU_REDIS_URL``)."""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kefu.settings import get_settings as kefu_settings
from kefu.settings import known_timezone

_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class HandoffSettings(BaseSettings):
    """Queue, lease, session and service-hour knobs of the human handoff."""

    model_config = SettingsConfigDict(env_prefix="KEFU_HANDOFF_", env_file=".env", extra="ignore")

    redis_url: str = Field("redis://127.0.0.1:6379/0",
                           validation_alias=AliasChoices("KEFU_REDIS_URL", "redis_url"))
    groups: list[str] = ["presale", "aftersale", "logistics"]
    default_group: str = "presale"
    lease_seconds: float = 30.0  # an agent's claim lapses this long after the last heartbeat
    heartbeat_seconds: float = 10.0  # how often the console renews its leases
    presence_ttl_seconds: float = 60.0  # an "online" agent unseen for this long counts as gone
    session_ttl_seconds: int = 8 * 3600  # idle console sessions expire after this
    session_max_seconds: int = 24 * 3600  # and any session this long after its login
    # Failed logins (wrong password or unknown account) counted in a window: past either limit,
    # logins of that account / from that address are refused until the window ends.
    login_failures_per_account: int = 10
    login_failures_per_address: int = 50
    login_failure_window_seconds: int = 15 * 60
    service_hours: str = "00:00-24:00"  # comma-separated HH:MM-HH:MM windows; may wrap midnight
    # the store's zone (``KEFU_TIMEZONE``) unless this package is told otherwise
    timezone: str = Field(default_factory=lambda: kefu_settings().timezone)
    sla_seconds: int = 60  # first agent reply expected within this long after the handoff
    default_handle_seconds: float = 300.0  # handling-time guess until real ones are recorded
    handle_samples: int = 20  # how many recent handling times the wait estimate averages
    position_updates: int = 10  # shoppers up to this queue position are told when it moves
    closed_ttl_days: int = 30  # closed tickets are kept this long
    closed_index_max: int = 5000  # newest closed tickets listed in the console
    bcrypt_rounds: int = 12

    @field_validator("service_hours")
    @classmethod
    def _check_hours(cls, value: str) -> str:
        for window in value.split(","):
            match = _WINDOW.match(window)
            if match is None:
                raise ValueError(f"service hours window {window!r} is not HH:MM-HH:MM")
            h1, m1, h2, m2 = (int(g) for g in match.groups())
            if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59:
                raise ValueError(f"service hours window {window!r} is not a time of day")
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        return known_timezone(value)

    def in_service_hours(self, at: datetime) -> bool:
        """True when a human is scheduled to answer at ``at`` (a timezone-aware time)."""
        local = at.astimezone(ZoneInfo(self.timezone))
        minute = local.hour * 60 + local.minute
        for window in self.service_hours.split(","):
            match = _WINDOW.match(window)
            assert match is not None  # validated above
            h1, m1, h2, m2 = (int(g) for g in match.groups())
            start, end = h1 * 60 + m1, h2 * 60 + m2
            if start <= end and start <= minute < end:
                return True
            if start > end and (minute >= start or minute < end):
                return True
        return False


@lru_cache
def get_settings() -> HandoffSettings:
    """The process-wide settings; tests build their own ``HandoffSettings`` instead."""
    return HandoffSettings()
