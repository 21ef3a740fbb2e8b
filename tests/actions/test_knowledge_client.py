"""The actions' knowledge client: decisions in a worker thread, failures as one error."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from actions.errors import KnowledgeUnavailableError
from actions.knowledge_client import MAX_QUESTION_CHARS, KnowledgeClient
from knowledge.models import Category, Decision, DecisionKind, Entry

AT = datetime(2026, 3, 1, 12, tzinfo=UTC)
ENTRY = Entry(id="ship-time", question="什么时候发货", answer="48小时内。", category=Category.LOGISTICS)


class Service:
    """A knowledge service that records how it was asked, and from which thread."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple[str, datetime | None, str | None, float | None]] = []
        self.threads: list[int] = []

    def decide(self, text: str, *, at: datetime | None = None, intent: str | None = None,
               intent_confidence: float | None = None) -> Decision:
        self.threads.append(threading.get_ident())
        if self.fail:
            raise RuntimeError("index rebuilding")
        self.calls.append((text, at, intent, intent_confidence))
        return Decision(kind=DecisionKind.HANDOFF, text=text, at=at or AT, candidates=[])

    def now(self) -> datetime:
        return AT

    def entry(self, entry_id: str) -> Entry | None:
        if self.fail:
            raise RuntimeError("index rebuilding")
        return ENTRY if entry_id == ENTRY.id else None


async def test_decide_passes_the_question_and_runs_off_the_event_loop() -> None:
    service = Service()
    decision = await KnowledgeClient(service).decide(
        "x", intent="ask_question", intent_confidence=0.5, at=AT)
    assert decision.kind is DecisionKind.HANDOFF
    assert service.calls == [("x", AT, "ask_question", 0.5)]
    assert service.threads != [threading.get_ident()]  # the loop keeps serving meanwhile


async def test_decide_bounds_the_question_length() -> None:
    service = Service()
    await KnowledgeClient(service).decide("长" * (MAX_QUESTION_CHARS + 50))
    assert len(service.calls[0][0]) == MAX_QUESTION_CHARS


async def test_a_failing_service_raises_knowledge_unavailable() -> None:
    client = KnowledgeClient(Service(fail=True))
    with pytest.raises(KnowledgeUnavailableError, match="index rebuilding"):
        await client.decide("x")
    with pytest.raises(KnowledgeUnavailableError):
        await client.entry("ship-time")


async def test_entry_is_the_live_entry_or_none() -> None:
    client = KnowledgeClient(Service())
    assert await client.entry("ship-time") == ENTRY
    assert await client.entry("gone") is None
