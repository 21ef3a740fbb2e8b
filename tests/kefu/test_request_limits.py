"""The HTTP edge of issue #11: body limits, lone surrogates, no echo of bodies, Redis away."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from redis.exceptions import ConnectionError as RedisConnectionError

from kefu.http import RequestLimits, install_error_handlers


class Note(BaseModel):
    text: str


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/notes")
    async def add(note: Note) -> dict[str, int]:
        note.text.encode("utf-8")  # what storing it would do
        return {"chars": len(note.text)}

    @app.post("/upload")
    async def upload(note: Note) -> dict[str, int]:
        return {"chars": len(note.text)}

    @app.get("/redis")
    async def redis_away() -> None:
        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    app.add_middleware(RequestLimits, default=1024, limits=[("/upload", 64 * 1024)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://kefu") as c:
        yield c


async def test_a_body_over_the_limit_is_a_short_413(client: httpx.AsyncClient) -> None:
    big = json.dumps({"text": "长" * 10_000})
    response = await client.post("/notes", content=big,
                                  headers={"content-type": "application/json"})
    assert response.status_code == 413 and len(response.content) < 200
    assert response.json() == {"detail": "request body over 1024 bytes",
                               "code": "payload_too_large", "limit": 1024}
    assert (await client.post("/upload", content=big,
                              headers={"content-type": "application/json"})).status_code == 200


async def test_a_body_that_lies_about_its_length_is_cut_off_too(
        client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        yield b'{"text": "'
        for _ in range(100):
            yield b"x" * 100
        yield b'"}'

    response = await client.post("/notes", content=chunks(),
                                 headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"


async def test_an_invalid_body_is_not_echoed_back(client: httpx.AsyncClient) -> None:
    response = await client.post("/upload", json={"text": 42, "secret": "x" * 5000})
    assert response.status_code == 422
    assert "xxxxx" not in response.text and len(response.content) < 1000
    assert response.json()["errors"][0].keys() == {"loc", "msg", "type"}


@pytest.mark.parametrize("raw", [rb'{"text": "\ud800"}', rb'{"text": "a\udfffb"}',
                                 rb'{"text": "ok", "\ud83d": 1}'])
async def test_a_lone_surrogate_is_a_422_not_a_500(client: httpx.AsyncClient,
                                                   raw: bytes) -> None:
    response = await client.post("/notes", content=raw,
                                 headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["code"] == "invalid_request"


async def test_paired_surrogates_and_escaped_backslashes_are_fine(
        client: httpx.AsyncClient) -> None:
    for raw in (rb'{"text": "\ud83d\ude00"}', rb'{"text": "\\ud800"}'):
        response = await client.post("/notes", content=raw,
                                     headers={"content-type": "application/json"})
        assert response.status_code == 200


async def test_redis_away_is_a_503_with_retry_after(client: httpx.AsyncClient) -> None:
    response = await client.get("/redis")
    assert response.status_code == 503 and response.headers["Retry-After"] == "2"
    assert response.json()["code"] == "store_unavailable"
