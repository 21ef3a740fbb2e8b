"""The quality API and /metrics over HTTP on a real server: roles, blocks, live events."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from handoff.api import create_router
from handoff.service import HandoffService
from kefu import metrics
from kefu.accounts import AgentRole
from kefu.http import install_error_handlers
from quality.runtime import QualityRuntime
from tests.handoff.conftest import PASSWORD, AgentFactory, open_ticket, seed_conversation
from tests.helpers.live_server import serve

pytestmark = pytest.mark.redis


@pytest.fixture
async def client(service: HandoffService,
                 redis: aioredis.Redis) -> AsyncIterator[httpx.AsyncClient]:
    runtime = QualityRuntime(redis, service, clock_seconds=0.2)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start(anger_model=False)
        yield
        await runtime.stop()

    app = FastAPI(lifespan=lifespan)
    app.include_router(create_router(service))
    app.include_router(runtime.router(service.agents.authenticate))
    app.include_router(metrics.create_router())
    app.add_middleware(metrics.TimingMiddleware)
    install_error_handlers(app)
    async with serve(app) as server, httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        yield http


async def login(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    response = await client.post("/api/v1/agent/login",
                                 json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


async def events(client: httpx.AsyncClient, headers: dict[str, str],
                 into: list[tuple[str, dict[str, object], float]]) -> None:
    """Collect (event, data, arrival time) from the quality stream until cancelled."""
    async with client.stream("GET", "/api/v1/quality/events", headers=headers) as response:
        kind = ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                into.append((kind, json.loads(line[5:]), time.monotonic()))


async def test_rules_need_a_supervisor_to_change(client: httpx.AsyncClient,
                                                 make_agent: AgentFactory) -> None:
    await make_agent("li", ["aftersale"])
    await make_agent("boss", ["aftersale"], role=AgentRole.MANAGER)
    li, boss = await login(client, "li"), await login(client, "boss")
    rules = (await client.get("/api/v1/quality/rules", headers=li)).json()
    assert rules["version"] == 0
    body = {"base_version": 0, "rules": rules["rules"][:3], "comment": "trim"}
    assert (await client.put("/api/v1/quality/rules", json=body, headers=li)).status_code == 403
    saved = await client.put("/api/v1/quality/rules", json=body, headers=boss)
    assert saved.status_code == 200 and saved.json()["version"] == 1
    again = await client.put("/api/v1/quality/rules", json=body, headers=boss)
    assert again.status_code == 409 and again.json()["live_version"] == 1
    bad = {**body, "base_version": 1, "rules": [{**rules["rules"][0], "patterns": ["("]}]}
    assert (await client.put("/api/v1/quality/rules", json=bad, headers=boss)).status_code == 422
    audit = (await client.get("/api/v1/quality/audit", headers=boss)).json()
    assert audit[0]["version"] == 1 and audit[0]["by"] == "boss"


async def test_live_alerts_whispers_and_blocks(client: httpx.AsyncClient, service: HandoffService,
                                               make_agent: AgentFactory) -> None:
    li_agent = await make_agent("li", ["aftersale"])
    await make_agent("boss", ["aftersale"], role=AgentRole.MANAGER)
    li, boss = await login(client, "li"), await login(client, "boss")
    got_boss: list[tuple[str, dict[str, object], float]] = []
    got_li: list[tuple[str, dict[str, object], float]] = []
    tasks = [asyncio.create_task(events(client, boss, got_boss)),
             asyncio.create_task(events(client, li, got_li))]
    try:
        while len(got_boss) < 1 or len(got_li) < 1:  # both streams ready
            await asyncio.sleep(0.02)
        await seed_conversation(service, "web:wang")
        ticket = await service.claim((await open_ticket(service, "web:wang")).id, li_agent)
        said = time.monotonic()
        await service.add_shopper_message("web:wang", "我要投诉你们")
        # its alert comes from a task (the anger model runs in a worker thread), the blocked
        # message's from the request itself: two messages' alerts have no order, so wait
        deadline = time.monotonic() + 3
        while len(got_boss) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        blocked = await client.post(f"/api/v1/tickets/{ticket.id}/messages",
                                    json={"text": "加我微信 li123"}, headers=li)
        assert blocked.status_code == 422
        assert blocked.json()["code"] == "message_blocked"
        assert blocked.json()["rule_id"] == "off-platform"
        whisper = await client.post(f"/api/v1/quality/tickets/{ticket.id}/whisper",
                                    json={"text": "别留联系方式"}, headers=boss)
        assert whisper.status_code == 201
        deadline = time.monotonic() + 3
        while len(got_boss) < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    kinds = [(k, d.get("alert", {}).get("rule_id") if isinstance(d.get("alert"), dict) else None)
             for k, d, _t in got_boss[1:]]
    assert kinds == [("qa.alert", "complaint-threat"), ("qa.alert", "off-platform"),
                     ("qa.whisper", None)]
    assert got_boss[1][2] - said < 1.0  # within a second
    assert [k for k, _d, _t in got_li[1:]] == ["qa.whisper"]  # agents get no alerts
    shopper_saw = await service.conversations.sent_to_shopper("web:wang")
    assert not any("微信" in t.text or "联系方式" in t.text for t in shopper_saw)


async def test_metrics_count_what_happened(client: httpx.AsyncClient, service: HandoffService,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def sample(text: str, name: str, labels: str) -> float:
        for line in text.splitlines():
            if line.startswith(f"{name}{{{labels}}}"):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = (await client.get("/metrics")).text
    await seed_conversation(service, "web:m")  # two shopper turns and one bot turn
    await open_ticket(service, "web:m")
    after = await client.get("/metrics")
    assert after.status_code == 200
    shopper = 'channel="web",role="shopper"'
    assert sample(after.text, "kefu_messages_total", shopper) - \
        sample(before, "kefu_messages_total", shopper) == 2
    reason = 'reason="low_confidence"'
    assert sample(after.text, "kefu_handoffs_total", reason) - \
        sample(before, "kefu_handoffs_total", reason) == 1
    assert 'kefu_http_seconds_count{method="GET",route="/metrics",status="2xx"}' in after.text
    monkeypatch.setenv("KEFU_METRICS_TOKEN", "scrape-secret")
    assert (await client.get("/metrics")).status_code == 404
    with_token = await client.get("/metrics",
                                  headers={"Authorization": "Bearer scrape-secret"})
    assert with_token.status_code == 200
