"""What the web chat says when a shopper opens it: a greeting and a few quick questions.

Knowledge managers set them in the knowledge admin (``PUT /api/v1/kb/welcome``), per language;
the widget reads them (``GET /api/v1/widget/welcome?lang=zh``) and shows them in the shopper's
language, each quick question a button that asks it. Until a manager sets them, the defaults
below are shown: questions every shop answers, worded so the demo store answers each at once.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, field_validator

from kefu.keys import kb_welcome_key
from kefu.language import Language

MAX_QUICK_QUESTIONS = 4


class Welcome(BaseModel):
    """The greeting and quick questions of one language."""

    model_config = ConfigDict(extra="forbid")

    greeting: str = Field(min_length=1, max_length=200)
    questions: list[str] = Field(default_factory=list, max_length=MAX_QUICK_QUESTIONS)

    @field_validator("greeting")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("the greeting must not be empty")
        return value

    @field_validator("questions")
    @classmethod
    def _clean(cls, values: list[str]) -> list[str]:
        cleaned = list(dict.fromkeys(v.strip() for v in values if v.strip()))
        if any(len(v) > 60 for v in cleaned):
            raise ValueError("a quick question has at most 60 characters")
        return cleaned


class WelcomeSettings(BaseModel):
    """The greeting and quick questions in every language the widget speaks."""

    model_config = ConfigDict(extra="forbid")

    zh: Welcome
    en: Welcome

    def of(self, language: Language | str) -> Welcome:
        """The welcome in ``language`` (Chinese unless English)."""
        return self.en if language == Language.EN.value else self.zh


DEFAULT_WELCOME = WelcomeSettings(
    zh=Welcome(greeting="您好！我是智能客服小助手，请问有什么可以帮您？",
               questions=["退货流程", "怎么查物流？", "鞋子偏码吗？", "可以开发票吗？"]),
    en=Welcome(greeting="Hello! I'm the shop assistant. How can I help you?",
               questions=["How do I return an item?", "How long is delivery?",
                          "Is it authentic?"]),
)


class WelcomeStore:
    """Reads and writes the welcome in Redis (``kb_welcome_key``, no TTL)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def get(self) -> WelcomeSettings:
        """The welcome managers set, or :data:`DEFAULT_WELCOME`."""
        raw = await self._redis.get(kb_welcome_key())
        return WelcomeSettings.model_validate_json(raw) if raw else DEFAULT_WELCOME

    async def set(self, welcome: WelcomeSettings) -> WelcomeSettings:
        """Replace the welcome for every widget from its next opening."""
        await self._redis.set(kb_welcome_key(), welcome.model_dump_json())
        return welcome
