"""Settings of the knowledge package (environment variables with the ``KEFU_`` prefix)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kefu.settings import get_settings as kefu_settings
from kefu.settings import known_timezone

DEMO_STORE_PATH = Path(__file__).resolve().parent / "data" / "demo_store.yaml"


class KnowledgeSettings(BaseSettings):
    """What the knowledge service needs to know about its environment."""

    model_config = SettingsConfigDict(env_prefix="KEFU_", extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    embedding_model: str = "var/models/multilingual-e5-small"  # sentence-transformers dir or name
    second_encoder: bool = True  # also score with the second (USE) encoder when installed
    # zone of naive times typed by people (CLI --at, API ``at``): the store's, ``KEFU_TIMEZONE``
    timezone: str = Field(default_factory=lambda: kefu_settings().timezone)
    demo_store: Path = DEMO_STORE_PATH  # published when Redis has no live version yet
    search_k: int = Field(default=5, ge=1, le=50)  # candidates retrieved per decision
    embedding_cache_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    live_poll_seconds: float = Field(default=30.0, gt=0)  # safety net if a pub/sub event is lost
    query_vector_cache: int = Field(default=4096, ge=0)  # recent questions' vectors kept (LRU)
    # Embed a message as it reaches the gateway, while Rasa classifies it (needs the cache).
    prefetch_query_vectors: bool = True
    # e5 with int8 linear layers (feed-forward outputs stay float): ~1.5x faster per question,
    # decisions within 1-3 points of float32 (benchmarks/results/history/retrieval-2026-11.md).
    embedding_int8: bool = True
    # e5's tokenizer in plain Python (knowledge/encoders/unigram.py): the same ids, ~210 MB less
    # memory per process that embeds; off keeps the `tokenizers` one.
    embedding_light_tokenizer: bool = True
    provisional_swap: bool = True  # answer from a new version at once, calibrated a moment later
    # Cuts of the answer/clarify/handoff policy (`knowledge.decision`) on the confidence model's
    # probabilities; unset, the shipped model's own (chosen on held-out dev knowledge bases,
    # benchmarks/results/generalisation.md). Higher ``answer_confidence``: fewer, safer answers.
    answer_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    # How alike (mean-vector cosine, e5 and USE averaged) a campaign entry and its nearest
    # evergreen entry of the same category must be to be one topic: inside its window the
    # campaign entry then answers for it (`knowledge.retrieval.find_twins`).
    twin_similarity: float = Field(default=0.82, ge=0.0, le=1.0)
    clarify_confidence: float | None = Field(default=None, ge=0.0, le=1.0)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return known_timezone(value)

    @property
    def tz(self) -> ZoneInfo:
        """The configured zone as a ``tzinfo``."""
        return ZoneInfo(self.timezone)


@lru_cache(maxsize=1)
def get_settings() -> KnowledgeSettings:
    """The process-wide settings, read once (tests call ``get_settings.cache_clear()``)."""
    return KnowledgeSettings()
