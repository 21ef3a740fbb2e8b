from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from kefu.http import install_error_handlers
from knowledge.api import create_router
from knowledge.models import Decision
from knowledge.service import KnowledgeIndex, KnowledgeService
from knowledge.settings import KnowledgeSettings


def client_for(service: KnowledgeService) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(create_router(service))
    install_error_handlers(app)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kefu")


@pytest.fixture
async def client(shop_index: KnowledgeIndex) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(KnowledgeService(shop_index, settings=KnowledgeSettings())) as c:
        yield c


async def test_decide_answers_with_the_campaign_entry_inside_its_window(
    client: httpx.AsyncClient,
) -> None:
    body = {"text": "多久发货", "at": "2025-11-05T10:00:00+08:00", "intent": "faq",
            "intent_confidence": 0.8}
    response = await client.post("/api/v1/knowledge/decide", json=body)
    assert response.status_code == 200
    decision = Decision.model_validate(response.json())
    assert decision.kind == "answer" and decision.entry is not None
    assert decision.entry.entry_id == "ship-time-d11"
    assert decision.confidence is not None and 0.0 <= decision.confidence <= 1.0
    # Rasa's intent is accepted (and validated) but does not move the decision
    del body["intent"], body["intent_confidence"]
    plain = Decision.model_validate((await client.post("/api/v1/knowledge/decide",
                                                       json=body)).json())
    assert (plain.kind, plain.entry, plain.confidence) == (decision.kind, decision.entry,
                                                          decision.confidence)


async def test_decide_hands_off_out_of_scope(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/knowledge/decide", json={"text": "今天天气怎么样"})
    assert response.status_code == 200 and response.json()["kind"] == "handoff"


@pytest.mark.parametrize("body", [
    {"text": ""},
    {"text": "x", "intent_confidence": 1.5},
    {"text": "x", "at": "not a time"},
    {"text": "x", "colour": "red"},
])
async def test_bad_decide_bodies_are_422(client: httpx.AsyncClient, body: dict[str, object]) -> None:
    response = await client.post("/api/v1/knowledge/decide", json=body)
    assert response.status_code == 422


async def test_search_returns_k_ranked_candidates(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/knowledge/search",
                                 json={"text": "可以开发票吗", "k": 3,
                                       "at": "2025-06-01T12:00:00"})
    assert response.status_code == 200
    data = response.json()
    assert data["at"] == "2025-06-01T12:00:00+08:00"  # naive: the configured zone
    assert data["kb_version"] is None
    scores = [c["score"] for c in data["candidates"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    assert data["candidates"][0]["entry_id"] == "invoice"
    assert (await client.post("/api/v1/knowledge/search",
                              json={"text": "x", "k": 0})).status_code == 422


async def test_entries_and_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/knowledge/entries/invoice")
    assert response.status_code == 200 and response.json()["category"] == "aftersale"
    missing = await client.get("/api/v1/knowledge/entries/nope")
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]


async def test_version_reports_the_answer_policy(
    client: httpx.AsyncClient, shop_index: KnowledgeIndex,
) -> None:
    data = (await client.get("/api/v1/knowledge/version")).json()
    assert data["entries"] == 6 and data["version"] is None and data["provisional"] is False
    assert "thresholds" not in data
    assert data["policy"] == shop_index.policy.model_dump()
    assert 0.0 < data["policy"]["clarify"] <= 1.0 and 0.0 < data["policy"]["answer"] <= 1.0


async def test_empty_service_hands_off_and_reports_no_version() -> None:
    async with client_for(KnowledgeService(settings=KnowledgeSettings())) as client:
        decision = (await client.post("/api/v1/knowledge/decide", json={"text": "退货"})).json()
        version = (await client.get("/api/v1/knowledge/version")).json()
    assert decision["kind"] == "handoff" and decision["candidates"] == []
    assert version == {"version": None, "entries": 0, "policy": None, "provisional": False,
                       "build_seconds": None}
