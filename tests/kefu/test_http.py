"""One error mapping for the whole app: every error, kefu's or FastAPI's, answers the same shape."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

import actions.errors
import bot.channels.errors
import bot.gateway.errors
import handoff.errors
import knowledge.errors
from kefu.errors import KefuError, NotAuthenticated
from kefu.http import install_error_handlers

ERROR_MODULES = (actions.errors, bot.channels.errors, bot.gateway.errors, handoff.errors, knowledge.errors)


class Body(BaseModel):
    n: int


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_handlers(app)
    raising = {
        "problems": knowledge.errors.ValidationFailed(
            [knowledge.errors.Problem("kb.csv", "row 3", "answer", "must not be empty")]),
        "ticket": handoff.errors.TicketNotFound("no ticket 't1'", ticket_id="t1"),
        "login": NotAuthenticated("session expired"),
        "rasa": bot.gateway.errors.UpstreamUnavailable("Rasa is busy", service="rasa", retry_after=1.2),
    }

    @app.get("/raise/{name}")
    async def fail(name: str) -> None:
        raise raising[name]

    @app.post("/body")
    async def body(payload: Body) -> Body:
        return payload

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kefu.test") as http:
        yield http


async def test_each_error_answers_its_status_code_and_fields(client: httpx.AsyncClient) -> None:
    problems = await client.get("/raise/problems")
    assert problems.status_code == 422
    assert problems.json()["code"] == "validation_failed"
    assert problems.json()["problems"][0]["location"] == "row 3"
    ticket = await client.get("/raise/ticket")
    assert (ticket.status_code, ticket.json()) == (404, {
        "detail": "no ticket 't1'", "code": "ticket_not_found", "ticket_id": "t1",
        "conversation_id": None})
    login = await client.get("/raise/login")
    assert login.status_code == 401 and login.headers["WWW-Authenticate"] == "Bearer"
    rasa = await client.get("/raise/rasa")
    assert rasa.status_code == 503 and rasa.headers["Retry-After"] == "2"
    assert rasa.json()["service"] == "rasa"


async def test_fastapis_own_errors_have_the_same_shape(client: httpx.AsyncClient) -> None:
    invalid = await client.post("/body", json={"n": "many"})
    assert invalid.status_code == 422 and invalid.json()["code"] == "invalid_request"
    assert "body.n" in invalid.json()["detail"] and invalid.json()["errors"]
    missing = await client.get("/nowhere")
    assert missing.status_code == 404 and missing.json() == {"detail": "Not Found",
                                                             "code": "http_404"}


def _subclasses(cls: type[KefuError]) -> list[type[KefuError]]:
    return [cls, *(s for sub in cls.__subclasses__() for s in _subclasses(sub))]


def test_every_error_class_carries_a_status_and_its_own_code() -> None:
    assert ERROR_MODULES  # imported for their classes
    classes = _subclasses(KefuError)
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes)), "two error classes share a code"
    for cls in classes:
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", cls.code), cls
        assert 400 <= cls.status_code <= 599, cls
