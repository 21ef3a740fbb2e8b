"""Settings of the ``kefu`` package itself (env prefix ``KEFU_``): data kept below every package."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
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


@lru_cache
def get_settings() -> KefuSettings:
    """The process-wide settings; tests build their own ``KefuSettings`` instead."""
    return KefuSettings()
