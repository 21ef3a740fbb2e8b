from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from kefu.accounts import Agent
from kefu.errors import NotAuthenticated
from kefu.http import install_error_handlers
from knowledge.api import create_router
from knowledge.models import Decision
from knowledge.service import KnowledgeIndex, KnowledgeService
from knowledge.settings import KnowledgeSettings

STAFF_TOKEN = "staff-session-token"
STAFF = {"Authorization": f"Bearer {STAFF_TOKEN}"}


async def authenticate(token: str) -> Agent:
    """The console's session check, as the app wires it: one known staff token."""
    if token != STAFF_TOKEN:
        raise NotAuthenticated("session expired or unknown; log in again")
    return Agent(username="kim", display_name="Kim", groups=["presale"],
                 created_at=datetime(2025, 1, 1, tzinfo=UTC))


def client_for(service: KnowledgeService, headers: dict[str, str] | None = None,
               ) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(create_router(service, authenticate))
    install_error_handlers(app)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kefu",
                             headers=headers)


@pytest.fixture
async def client(shop_index: KnowledgeIndex) -> AsyncIterator[httpx.AsyncClient]:
    """A staff member's client (a console session token)."""
    async with client_for(KnowledgeService(shop_index, settings=KnowledgeSettings()),
                          STAFF) as c:
        yield c


@pytest.fixture
async def shopper(shop_index: KnowledgeIndex) -> AsyncIterator[httpx.AsyncClient]:
    """Anyone: no token."""
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
    async with client_for(KnowledgeService(settings=KnowledgeSettings()), STAFF) as client:
        decision = (await client.post("/api/v1/knowledge/decide", json={"text": "退货"})).json()
        version = (await client.get("/api/v1/knowledge/version")).json()
    assert decision["kind"] == "handoff" and decision["candidates"] == []
    assert version == {"version": None, "entries": 0, "policy": None, "provisional": False,
                       "build_seconds": None}


# --- issue #11: what anyone may ask, and what only staff may ---------------------------------


async def test_anyone_may_ask_what_the_bot_answers_now(shopper: httpx.AsyncClient) -> None:
    decided = await shopper.post("/api/v1/knowledge/decide", json={"text": "可以开发票吗"})
    assert decided.status_code == 200 and decided.json()["entry"]["entry_id"] == "invoice"
    found = await shopper.post("/api/v1/knowledge/search", json={"text": "可以开发票吗"})
    assert found.status_code == 200 and found.json()["candidates"]
    assert (await shopper.get("/api/v1/knowledge/entries/invoice")).status_code == 200


async def test_a_campaign_is_not_readable_before_it_starts_without_a_staff_token(
    shopper: httpx.AsyncClient, client: httpx.AsyncClient,
) -> None:
    during = {"text": "双11期间多久发货", "at": "2025-11-05T10:00:00+08:00"}
    for route in ("decide", "search"):
        refused = await shopper.post(f"/api/v1/knowledge/{route}", json=during)
        assert refused.status_code == 401 and refused.json()["code"] == "not_authenticated"
        assert (await client.post(f"/api/v1/knowledge/{route}", json=during)).status_code == 200
    # the entry itself: outside its window it does not exist for a shopper (it is not now 11.11)
    hidden = await shopper.get("/api/v1/knowledge/entries/ship-time-d11")
    assert hidden.status_code == 404
    seen = await client.get("/api/v1/knowledge/entries/ship-time-d11")
    assert seen.status_code == 200 and seen.json()["campaign"] == "double11"


async def test_the_version_record_is_for_staff_only(shopper: httpx.AsyncClient) -> None:
    refused = await shopper.get("/api/v1/knowledge/version")
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
    stale = await shopper.get("/api/v1/knowledge/version",
                              headers={"Authorization": "Bearer lapsed"})
    assert stale.status_code == 401
