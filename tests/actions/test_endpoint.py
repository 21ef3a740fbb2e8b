"""The action endpoint as Rasa calls it: rasa-sdk's executor behind the gateway's internal route.

Real actions, real Redis and handoff service, the knowledge service faked at its edge; calls are
shaped as Rasa 3.6 sends them with ``enable_selective_domain`` (no domain).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from actions.endpoint import ACTIONS_PREFIX, SECRET_HEADER, build_executor, create_router
from actions.services import Services
from kefu.http import install_error_handlers
from tests.actions.fakes import SHIP, FakeKnowledge

pytestmark = pytest.mark.redis

SECRET = "s3cret-shared-with-rasa"
CONV = "web:bob"
URL = f"{ACTIONS_PREFIX}/webhook"


def action_call(action: str, text: str, intent: str) -> dict[str, Any]:
    latest = {"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": [],
              "metadata": {"channel": "web", "original_text": text}}
    return {
        "next_action": action, "sender_id": CONV, "version": "3.6.21",
        "tracker": {"sender_id": CONV, "slots": {"language": "zh"}, "latest_message": latest,
                    "latest_event_time": 1.0, "followup_action": None, "paused": False,
                    "events": [{"event": "user", "timestamp": 1.0, "text": text,
                                "parse_data": latest}],
                    "latest_input_channel": "rest", "active_loop": {},
                    "latest_action": {"action_name": "action_listen"},
                    "latest_action_name": "action_listen"},
    }


@pytest.fixture
async def http(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(create_router(build_executor(services), SECRET))
    install_error_handlers(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://gateway.test") as client:
        yield client


@pytest.mark.parametrize("headers", [{}, {SECRET_HEADER: "guess"}, {SECRET_HEADER: ""},
                                     {"Authorization": f"Bearer {SECRET}"}])
async def test_a_call_without_the_shared_secret_is_refused(
        http: httpx.AsyncClient, services: Services, knowledge: FakeKnowledge,
        headers: dict[str, str]) -> None:
    knowledge.answer("啥时候发货", SHIP)
    response = await http.post(URL, json=action_call("action_answer_question", "啥时候发货",
                                                     "ask_question"), headers=headers)
    assert response.status_code == 403
    assert response.json()["code"] == "action_call_refused"
    assert knowledge.requests == []  # nothing ran
    assert await services.conversations.analyses(CONV) == []


async def test_rasas_call_runs_the_action_and_answers_in_rasas_format(
        http: httpx.AsyncClient, services: Services, knowledge: FakeKnowledge) -> None:
    knowledge.answer("啥时候发货", SHIP)
    response = await http.post(URL, json=action_call("action_answer_question", "啥时候发货",
                                                     "ask_question"),
                               headers={SECRET_HEADER: SECRET})
    assert response.status_code == 200
    body = response.json()
    assert [r["text"] for r in body["responses"]] == [SHIP.answer]
    assert body["responses"][0]["buttons"][0]["payload"] == "/feedback_helpful"
    slots = {e["name"]: e["value"] for e in body["events"] if e["event"] == "slot"}
    assert slots["last_entry_id"] == "ship-time"
    [analysis] = await services.conversations.analyses(CONV)
    assert analysis.decision == "answer"


async def test_a_deflated_call_is_read_as_rasa_sends_it(http: httpx.AsyncClient,
                                                         knowledge: FakeKnowledge) -> None:
    knowledge.answer("啥时候发货", SHIP)
    raw = json.dumps(action_call("action_answer_question", "啥时候发货", "ask_question"))
    response = await http.post(URL, content=zlib.compress(raw.encode()), headers={
        SECRET_HEADER: SECRET, "Content-Encoding": "deflate",
        "Content-Type": "application/json"})
    assert response.status_code == 200
    assert response.json()["responses"][0]["text"] == SHIP.answer


async def test_an_unknown_action_is_404_with_its_name(http: httpx.AsyncClient) -> None:
    response = await http.post(URL, json=action_call("action_nope", "x", "greet"),
                               headers={SECRET_HEADER: SECRET})
    assert response.status_code == 404
    assert response.json()["action_name"] == "action_nope"


async def test_a_body_that_is_no_action_call_is_400(http: httpx.AsyncClient) -> None:
    response = await http.post(URL, content=b"[1, 2", headers={SECRET_HEADER: SECRET})
    assert response.status_code == 400
    assert response.json()["code"] == "action_rejected"


def test_the_endpoint_needs_a_secret(services: Services) -> None:
    with pytest.raises(ValueError, match="secret"):
        create_router(build_executor(services), "")
