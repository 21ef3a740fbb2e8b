from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from actions.errors import KnowledgeUnavailableError
from actions.knowledge_client import KnowledgeClient
from knowledge.models import DecisionKind

DECISION = {"kind": "handoff", "text": "x", "at": "2026-03-01T12:00:00Z", "candidates": []}



async def test_decide_sends_the_decide_request_and_parses_the_decision() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=DECISION)

    client = KnowledgeClient("http://gw.test/", transport=httpx.MockTransport(handler))
    at = datetime(2026, 3, 1, 12, tzinfo=UTC)
    decision = await client.decide("x", intent="ask_question", intent_confidence=0.5, at=at)
    await client.aclose()
    assert decision.kind is DecisionKind.HANDOFF
    assert str(seen[0].url) == "http://gw.test/api/v1/knowledge/decide"
    assert json.loads(seen[0].content) == {"text": "x", "intent": "ask_question",
                                           "intent_confidence": 0.5,
                                           "at": "2026-03-01T12:00:00Z"}


@pytest.mark.parametrize("response", [
    httpx.Response(500, text="boom"),
    httpx.Response(200, text="<html>"),
    httpx.Response(200, json=["not", "an", "object"]),
    httpx.Response(200, json={"kind": "maybe"}),
])
async def test_unusable_answers_raise_knowledge_unavailable(response: httpx.Response) -> None:
    client = KnowledgeClient("http://gw.test", transport=httpx.MockTransport(lambda _r: response))
    with pytest.raises(KnowledgeUnavailableError):
        await client.decide("x")
    await client.aclose()


async def test_unreachable_gateway_raises_knowledge_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = KnowledgeClient("http://gw.test", transport=httpx.MockTransport(refuse))
    with pytest.raises(KnowledgeUnavailableError):
        await client.decide("x")
    await client.aclose()


async def test_entry_is_none_when_the_knowledge_base_has_no_such_entry() -> None:
    client = KnowledgeClient("http://gw.test", transport=httpx.MockTransport(
        lambda _r: httpx.Response(404, json={"detail": "no entry"})))
    assert await client.entry("gone") is None
    await client.aclose()
