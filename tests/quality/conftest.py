"""Fixtures of the quality tests: the handoff fixtures (real Redis) and a monitor wired like the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import numpy as np
import pytest
import redis.asyncio as aioredis

from handoff.service import HandoffService
from kefu.conversation import utcnow
from quality.anger import AngerModel, AngerScorer
from quality.monitor import QualityMonitor
from quality.service import QualityService
from quality.store import QualityStore
from tests.handoff.conftest import make_agent, redis, service, settings  # noqa: F401

ANGRY_WORDS = ("气死", "angry", "受够")


def toy_embedder(text: str) -> np.ndarray:
    """A two-dimensional stand-in for the sentence encoder: [angry word present, 1]."""
    return np.array([float(any(w in text for w in ANGRY_WORDS)), 1.0], dtype=np.float32)


TOY_MODEL = AngerModel(encoder="toy", weights=np.array([8.0, 0.0], dtype=np.float32), bias=-4.0,
                       threshold=0.5)
"""Scores 0.98 for a text with an angry word, 0.02 otherwise."""


class Clock:
    """A settable clock for time-limit tests."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def monitor(service: HandoffService,  # noqa: F811
                  redis: aioredis.Redis) -> AsyncIterator[QualityMonitor]:  # noqa: F811
    found = QualityMonitor(QualityStore(redis), service,
                           scorer=AngerScorer(TOY_MODEL, toy_embedder))
    service.conversations.observers.append(found.observe)
    service.screen = found.screen
    await found.refresh_rules(force=True)
    yield found
    await found.drain()


@pytest.fixture
def quality(monitor: QualityMonitor, service: HandoffService) -> QualityService:  # noqa: F811
    return QualityService(monitor, service)
