"""The whole app's edges (issue #11): secrets, the internal action route, limits, staff routes.

``create_app`` on a real Redis without the embedding model (nothing here needs an answer).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import ValidationError

from bot.app import create_app
from bot.gateway.settings import BotSettings

pytestmark = pytest.mark.redis

ACTION_SECRET = "app-test-action-secret-0123456789"


@pytest.mark.parametrize("name", ["rasa_token", "action_secret"])
@pytest.mark.parametrize("value", ["change-me", "changeme", "", " secret "])
def test_a_placeholder_secret_is_refused_in_development_too(name: str, value: str) -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        BotSettings(**{name: value})


def test_production_needs_both_secrets_and_long_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEFU_RASA_TOKEN", raising=False)
    with pytest.raises(ValidationError, match="KEFU_RASA_TOKEN must be set"):  # not from .env
        BotSettings(_env_file=None, env="production", action_secret="x" * 32)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="at least 24"):
        BotSettings(env="production", rasa_token="short-token", action_secret="x" * 32)
    assert BotSettings(env="production", rasa_token="r" * 32, action_secret="a" * 32)


def test_a_channel_api_key_must_be_long() -> None:
    with pytest.raises(ValidationError, match="KEFU_CHANNEL_API_KEYS"):
        BotSettings(channel_api_keys={"shop": "short"})


@pytest.fixture
async def http(redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(BotSettings(redis_url=redis_url, load_knowledge=False,
                                 rasa_url="http://127.0.0.1:9", rasa_token="app-test-rasa-token",
                                 action_secret=ACTION_SECRET))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://kefu") as client:
        yield client


ACTION_CALL = {"next_action": "action_no_such_thing", "sender_id": "web:x",
               "tracker": {"sender_id": "web:x", "slots": {}, "latest_message": {}, "events": []}}


async def test_the_action_route_answers_only_with_the_secret(http: httpx.AsyncClient) -> None:
    url = "/internal/actions/webhook"
    for headers in ({}, {"X-Kefu-Action-Secret": "change-me"},
                    {"X-Kefu-Action-Secret": ACTION_SECRET[:-1]}):
        refused = await http.post(url, json=ACTION_CALL, headers=headers)
        assert refused.status_code == 403
    reached = await http.post(url, json=ACTION_CALL, headers={"X-Kefu-Action-Secret": ACTION_SECRET})
    assert reached.status_code == 404 and reached.json()["code"] == "action_not_found"
    assert "/internal/actions/webhook" not in (await http.get("/openapi.json")).text


async def test_without_a_configured_secret_the_action_route_stays_closed(
        redis_url: str) -> None:
    app = create_app(BotSettings(redis_url=redis_url, load_knowledge=False))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://kefu") as client:
        for guess in ("change-me", "", "None"):
            response = await client.post("/internal/actions/webhook", json=ACTION_CALL,
                                         headers={"X-Kefu-Action-Secret": guess})
            assert response.status_code == 403


async def test_a_10_mb_body_is_refused_short_and_not_echoed(http: httpx.AsyncClient) -> None:
    body = {"sender": "big", "text": "x" * (10 * 1024 * 1024)}
    response = await http.post("/api/v1/messages", json=body)
    assert response.status_code == 413 and len(response.content) < 200


async def test_staff_routes_need_a_staff_token(http: httpx.AsyncClient) -> None:
    for path in ("/api/v1/knowledge/version", "/api/v1/kb/templates/yaml",
                 "/api/v1/kb/templates/xlsx"):
        response = await http.get(path)
        assert response.status_code == 401, path


async def test_the_console_and_the_admin_cannot_be_framed(http: httpx.AsyncClient) -> None:
    for path in ("/console/", "/admin/kb/"):
        page = await http.get(path)
        assert page.status_code == 200
        assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
        assert page.headers["X-Frame-Options"] == "DENY"


async def test_readyz_checks_every_part(http: httpx.AsyncClient) -> None:
    ready = await http.get("/readyz")
    body = ready.json()
    assert set(body["checks"]) == {"redis", "rasa", "knowledge", "actions", "sweeper"}
    assert ready.status_code == 503 and "rasa" in body["degraded"] and "sweeper" in body["degraded"]
