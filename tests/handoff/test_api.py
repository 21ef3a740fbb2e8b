"""The console API through httpx's ASGI transport on a small app that mounts the router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI

from handoff.api import create_router
from handoff.models import CannedAnswer, TicketStatus
from handoff.service import HandoffService
from kefu.http import install_error_handlers
from tests.handoff.conftest import PASSWORD, AgentFactory, open_ticket, seed_conversation

pytestmark = pytest.mark.redis


async def canned_search(_text: str) -> list[CannedAnswer]:
    return [CannedAnswer(entry_id="refund-time", question="退款多久到账", answer="退款 1-3 个工作日原路退回。",
                         score=0.9)]


@pytest.fixture
def app(service: HandoffService) -> FastAPI:
    app = FastAPI()
    app.include_router(create_router(service, knowledge_search=canned_search))
    install_error_handlers(app)
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kefu.test") as http:
        yield http


async def login(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    response = await client.post("/api/v1/agent/login",
                                 json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


async def test_login_and_me(client: httpx.AsyncClient, make_agent: AgentFactory) -> None:
    await make_agent("li", ["presale", "aftersale"], online=False)
    bad = await client.post("/api/v1/agent/login", json={"username": "li", "password": "nope"})
    assert bad.status_code == 401 and bad.json()["code"] == "not_authenticated"
    unknown = await client.post("/api/v1/agent/login", json={"username": "zz", "password": "x"})
    assert unknown.status_code == 401
    auth = await login(client, "li")
    me = (await client.get("/api/v1/agent/me", headers=auth)).json()
    assert me["agent"]["username"] == "li" and me["agent"]["presence"] == "online"
    assert me["agent"]["groups"] == ["presale", "aftersale"]
    assert me["config"]["lease_seconds"] == 30.0
    assert me["config"]["timezone"] == "Asia/Shanghai"  # the dashboard's "today" is the shop's
    assert "password_hash" not in str(me)
    away = await client.post("/api/v1/agent/presence", json={"status": "away"}, headers=auth)
    assert away.json()["presence"] == "away"
    assert (await client.post("/api/v1/agent/logout", headers=auth)).status_code == 204
    assert (await client.get("/api/v1/agent/me", headers=auth)).status_code == 401


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer forged"},
                                     {"Authorization": "Basic bGk6cHc="}])
async def test_shoppers_and_bad_tokens_get_401(client: httpx.AsyncClient,
                                               headers: dict[str, str]) -> None:
    for method, path in [("GET", "/api/v1/tickets"), ("POST", "/api/v1/tickets/x/claim"),
                         ("POST", "/api/v1/tickets/x/messages"), ("GET", "/api/v1/agent/me"),
                         ("GET", "/api/v1/knowledge/canned?q=退款"), ("GET", "/api/v1/agent/events")]:
        response = await client.request(method, path, headers=headers, json={"text": "hi"})
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"


async def test_other_groups_get_403(client: httpx.AsyncClient, service: HandoffService,
                                    make_agent: AgentFactory) -> None:
    await make_agent("pre", ["presale"])
    ticket = await open_ticket(service, "web:x", group="logistics")
    auth = await login(client, "pre")
    assert (await client.get("/api/v1/tickets", headers=auth)).json() == []
    for method, path in [("GET", f"/api/v1/tickets/{ticket.id}"),
                         ("POST", f"/api/v1/tickets/{ticket.id}/claim")]:
        response = await client.request(method, path, headers=auth)
        assert response.status_code == 403
        assert response.json()["code"] == "not_authorized"


async def test_the_whole_flow(client: httpx.AsyncClient, service: HandoffService,
                              make_agent: AgentFactory) -> None:
    await make_agent("wang", ["aftersale"])
    await make_agent("zhao", ["aftersale"])
    await seed_conversation(service, "web:flow")
    ticket = await open_ticket(service, "web:flow")
    wang, zhao = await login(client, "wang"), await login(client, "zhao")

    listed = (await client.get("/api/v1/tickets", params={"status": "waiting"}, headers=wang)).json()
    assert [t["id"] for t in listed] == [ticket.id]
    packet = listed[0]["context"]
    assert packet["schema_version"] == 1 and packet["analyses"][0]["intent"] == "ask_refund"
    assert packet["slots"]["order_number"] == "E20240611001"

    assert (await client.post(f"/api/v1/tickets/{ticket.id}/claim", headers=wang)).status_code == 200
    lost = await client.post(f"/api/v1/tickets/{ticket.id}/claim", headers=zhao)
    assert lost.status_code == 409 and lost.json()["code"] == "already_claimed"
    assert lost.json()["agent"] == "wang"
    beat = await client.post(f"/api/v1/tickets/{ticket.id}/heartbeat", headers=wang)
    assert beat.json()["lease_seconds"] == 30.0
    assert (await client.post(f"/api/v1/tickets/{ticket.id}/heartbeat", headers=zhao)).status_code == 409

    await service.add_shopper_message("web:flow", "<script>alert(1)</script>")
    sent = await client.post(f"/api/v1/tickets/{ticket.id}/messages", json={"text": "您好"},
                             headers=wang)
    assert sent.status_code == 201 and sent.json()["role"] == "agent"
    empty = await client.post(f"/api/v1/tickets/{ticket.id}/messages", json={"text": ""},
                              headers=wang)
    assert empty.status_code == 422
    turns = (await client.get(f"/api/v1/tickets/{ticket.id}/transcript", headers=wang)).json()
    assert [t["text"] for t in turns[-2:]] == ["<script>alert(1)</script>", "您好"]
    later = (await client.get(f"/api/v1/tickets/{ticket.id}/transcript",
                              params={"after": turns[-2]["id"]}, headers=wang)).json()
    assert [t["text"] for t in later] == ["您好"]

    canned = (await client.get("/api/v1/knowledge/canned", params={"q": "退款"}, headers=wang)).json()
    assert canned[0]["answer"].startswith("退款")

    moved = await client.post(f"/api/v1/tickets/{ticket.id}/transfer",
                              json={"agent": "zhao", "note": "请跟进"}, headers=wang)
    assert moved.status_code == 200 and moved.json()["agent"] == "zhao"
    both = await client.post(f"/api/v1/tickets/{ticket.id}/transfer",
                             json={"agent": "zhao", "group": "presale"}, headers=zhao)
    assert both.status_code == 422
    refused = await client.post(f"/api/v1/tickets/{ticket.id}/resolve", json={"note": "x"},
                                headers=wang)
    assert refused.status_code == 403
    done = await client.post(f"/api/v1/tickets/{ticket.id}/resolve",
                             json={"note": "已退款", "return_to_bot": True}, headers=zhao)
    assert done.json()["status"] == TicketStatus.RETURNED
    closed = (await client.get("/api/v1/tickets", params={"status": "resolved"},
                               headers=zhao)).json()
    assert [t["resolution_note"] for t in closed] == ["已退款"]
    again = await client.post(f"/api/v1/tickets/{ticket.id}/resolve", json={}, headers=zhao)
    assert again.status_code == 409


async def test_claim_next_and_release(client: httpx.AsyncClient, service: HandoffService,
                                      make_agent: AgentFactory) -> None:
    await make_agent("n", ["presale"])
    auth = await login(client, "n")
    assert (await client.post("/api/v1/tickets/next", headers=auth)).json() is None
    ticket = await open_ticket(service, "web:next", group="presale")
    taken = (await client.post("/api/v1/tickets/next", headers=auth)).json()
    assert taken["id"] == ticket.id and taken["status"] == "claimed"
    back = (await client.post(f"/api/v1/tickets/{ticket.id}/release", headers=auth)).json()
    assert back["status"] == "waiting"
    missing = await client.post("/api/v1/tickets/nope/claim", headers=auth)
    assert missing.status_code == 404 and missing.json()["ticket_id"] == "nope"


async def test_console_files_and_openapi(client: httpx.AsyncClient) -> None:
    assert (await client.get("/console")).status_code in (307, 308)
    page = await client.get("/console/")
    assert page.status_code == 200 and 'data-testid="login-form"' in page.text
    for name in ("console.js", "kit.js"):
        assert (await client.get(f"/console/{name}")).headers["content-type"].startswith(
            "text/javascript")
    assert (await client.get("/console/secret.py")).status_code == 404
    assert (await client.get("/console/..%2fapi.py")).status_code == 404
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in ["/api/v1/agent/login", "/api/v1/tickets", "/api/v1/tickets/{ticket_id}/claim",
                 "/api/v1/tickets/{ticket_id}/messages", "/api/v1/tickets/{ticket_id}/transfer",
                 "/api/v1/tickets/{ticket_id}/resolve", "/api/v1/tickets/{ticket_id}/heartbeat",
                 "/api/v1/agent/presence", "/api/v1/agent/me", "/api/v1/agent/events",
                 "/api/v1/knowledge/canned"]:
        assert path in paths, path


async def test_history_search_over_http(client: httpx.AsyncClient, service: HandoffService,
                                        make_agent: AgentFactory) -> None:
    li = await make_agent("li", ["aftersale"])
    await seed_conversation(service, "web:h")
    ticket = await open_ticket(service, "web:h")
    await service.claim(ticket.id, li)
    await service.resolve(ticket.id, li, note="已退款")
    auth = await login(client, "li")
    today = (await service.get(ticket.id)).closed_at
    assert today is not None

    async def search(**params: str) -> list[str]:
        response = await client.get("/api/v1/history", params=params, headers=auth)
        assert response.status_code == 200, response.text
        return [item["ticket"]["id"] for item in response.json()]

    assert await search(q="E2024-0611-001") == [ticket.id]
    assert await search(q="没说过") == []
    day = today.astimezone(ZoneInfo(service.settings.timezone))
    assert await search(date_from=day.date().isoformat(), date_to=day.date().isoformat()) == \
        [ticket.id]
    item = (await client.get(f"/api/v1/history/{ticket.id}", headers=auth)).json()
    assert item["ticket"]["context"]["shopper"] == "小明" and item["can_reopen"] is False
    refused = await client.post(f"/api/v1/history/{ticket.id}/reopen", headers=auth)
    assert refused.status_code == 409 and refused.json()["code"] == "ticket_state"
