"""Shopper-facing HTTP routes: send a message, read what was sent since, health and readiness."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from bot.gateway import Gateway, OutMessage, Reply

ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]


class MessageIn(BaseModel):
    """Body of ``POST /api/v1/messages``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    sender: str = Field(min_length=1, max_length=128,
                        description="the shopper's chat id on the channel")
    text: str = Field(min_length=1, max_length=2000,
                      description="what the shopper typed, or a button payload")
    channel: Literal["web", "api"] = "web"
    display_name: str | None = Field(default=None, max_length=64)


class MessagesOut(BaseModel):
    """Body of ``GET /api/v1/conversations/{sender}/messages``."""

    messages: list[OutMessage]


def create_router(gateway: Gateway, readiness: ReadinessCheck) -> APIRouter:
    """Routes that only translate HTTP to :class:`Gateway` calls."""
    router = APIRouter()

    @router.post("/api/v1/messages", response_model=Reply, tags=["shopper"])
    async def post_message(body: MessageIn) -> Reply:
        """Send a shopper message; the bot's replies, or none while a human owns the chat."""
        return await gateway.handle(body.channel, body.sender, body.text,
                                    display_name=body.display_name)

    @router.get("/api/v1/conversations/{sender}/messages", response_model=MessagesOut,
                tags=["shopper"])
    async def get_messages(sender: str, after: str | None = Query(default=None, max_length=64),
                           channel: Literal["web", "api"] = "web") -> MessagesOut:
        """Bot and agent messages sent to the shopper after the message id ``after``."""
        return MessagesOut(messages=await gateway.messages_after(channel, sender, after))

    @router.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @router.get("/readyz", tags=["ops"])
    async def readyz(response: Response) -> dict[str, object]:
        """Readiness: Redis, Rasa and the knowledge index are usable."""
        checks = await readiness()
        ready = all(checks.values())
        response.status_code = 200 if ready else 503
        return {"ready": ready, "checks": checks}

    return router
