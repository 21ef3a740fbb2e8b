"""Settings of the knowledge package (environment variables with the ``KEFU_`` prefix)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEMO_STORE_PATH = Path(__file__).resolve().parent / "data" / "demo_store.yaml"


class KnowledgeSettings(BaseSettings):
    """What the knowledge service needs to know about its environment."""

    model_config = SettingsConfigDict(env_prefix="KEFU_", extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    embedding_model: str = "var/models/multilingual-e5-small"  # sentence-transformers dir or name
    second_encoder: bool = True  # also score with the second (USE) encoder when installed
    timezone: str = "Asia/Shanghai"  # zone of naive times typed by people (CLI --at, API ``at``)
    demo_store: Path = DEMO_STORE_PATH  # published when Redis has no live version yet
    search_k: int = Field(default=5, ge=1, le=50)  # candidates retrieved per decision
    embedding_cache_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    live_poll_seconds: float = Field(default=30.0, gt=0)  # safety net if a pub/sub event is lost
    query_vector_cache: int = Field(default=4096, ge=0)  # recent questions' vectors kept (LRU)
    # Embed a message as it reaches the gateway, while Rasa classifies it (needs the cache).
    prefetch_query_vectors: bool = True
    # e5 with int8 linear layers (feed-forward outputs stay float): ~1.5x faster per question,
    # decisions within 1-3 points of float32 (benchmarks/results/retrieval.md).
    embedding_int8: bool = True
    provisional_swap: bool = True  # answer from a new version at once, calibrated a moment later
    # Operating points of the calibrated answer/clarify/handoff policy (`knowledge.decision`):
    # share of calibration questions (the knowledge base's held-out variants and tests, and the
    # generic out-of-scope list) the policy may answer wrong; real questions, easier than held-out
    # variants, get fewer (benchmarks/results/retrieval.md).
    target_wrong_rate: float = Field(default=0.05, gt=0.0, lt=0.5)
    # share of the out-of-scope calibration questions that must score below the clarify threshold
    # (handed to a person rather than offered options).
    target_oos_handoff: float = Field(default=0.9, ge=0.5, le=1.0)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def tz(self) -> ZoneInfo:
        """The configured zone as a ``tzinfo``."""
        return ZoneInfo(self.timezone)


@lru_cache(maxsize=1)
def get_settings() -> KnowledgeSettings:
    """The process-wide settings, read once (tests call ``get_settings.cache_clear()``)."""
    return KnowledgeSettings()
