"""The supervisor's HTTP API under ``/api/v1/quality`` and its live event stream.

Routes only translate: they authenticate the agent (the console's session token), call
:class:`~quality.service.QualityService` and return its models; errors map to HTTP in one place
(`kefu.http`).
"""

# No ``from __future__ import annotations``: FastAPI reads the route annotations at runtime and
# they refer to the per-router ``auth`` dependency, a closure variable.

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from redis.exceptions import RedisError

from handoff.models import Ticket
from kefu.accounts import Agent
from kefu.conversation import Turn
from kefu.http import Authenticate, agent_dependency
from kefu.keys import qa_events_channel
from quality.models import (
    Alert,
    AngerRequest,
    AuditEntry,
    EventKind,
    QualityEvent,
    SaveRulesRequest,
    Whisper,
    WhisperRequest,
)
from quality.rules import RuleSet
from quality.service import QualityService, is_supervisor
from quality.store import decode

PING_SECONDS = 15.0


def create_router(service: QualityService, redis: aioredis.Redis,
                  authenticate: Authenticate) -> APIRouter:
    """The quality API (rules, alerts, whisper, take over, watch, live events)."""
    router = APIRouter(prefix="/api/v1/quality", tags=["quality control"])
    auth: Any = Depends(agent_dependency(authenticate))

    @router.get("/rules")
    async def rules(_agent: Annotated[Agent, auth], version: int | None = None) -> RuleSet:
        """The live rules (every agent may read them), or a saved `version` (0: defaults)."""
        return await service.rules(version)

    @router.put("/rules", responses={409: {"description": "saved meanwhile by someone else"}})
    async def save_rules(body: SaveRulesRequest, agent: Annotated[Agent, auth]) -> RuleSet:
        """Save the whole rule list as a new version (supervisors; on top of `base_version`)."""
        return await service.save_rules(agent, body.rules, body.base_version, body.comment)

    @router.get("/audit")
    async def audit(agent: Annotated[Agent, auth]) -> list[AuditEntry]:
        """Who changed the rules, when, and which rules (supervisors)."""
        return await service.audit(agent)

    @router.get("/alerts")
    async def alerts(agent: Annotated[Agent, auth],
                     since: datetime | None = None) -> list[Alert]:
        """Recent alerts, newest first (supervisors)."""
        return await service.alerts(agent, since)

    @router.post("/tickets/{ticket_id}/whisper", status_code=201)
    async def whisper(ticket_id: str, body: WhisperRequest,
                      agent: Annotated[Agent, auth]) -> Whisper:
        """A note to the ticket's agent; the shopper never sees it (supervisors)."""
        return await service.whisper(agent, ticket_id, body.text)

    @router.get("/tickets/{ticket_id}/whispers")
    async def whispers(ticket_id: str, agent: Annotated[Agent, auth]) -> list[Whisper]:
        """The whispers on a ticket (its agent, supervisors)."""
        return await service.whispers(agent, ticket_id)

    @router.post("/tickets/{ticket_id}/takeover")
    async def take_over(ticket_id: str, agent: Annotated[Agent, auth]) -> Ticket:
        """The supervisor takes the chat (must be online; supervisors)."""
        return await service.take_over(agent, ticket_id)

    @router.get("/conversations/{conversation_id}/transcript")
    async def watch(conversation_id: str, agent: Annotated[Agent, auth],
                    after: str | None = None) -> list[Turn]:
        """Any conversation's transcript, live with `after` (supervisors)."""
        return await service.watch(agent, conversation_id, after)

    @router.post("/anger")
    async def anger(body: AngerRequest, agent: Annotated[Agent, auth]) -> list[float | None]:
        """The anger model's score of each text (supervisors trying the model)."""
        return await service.anger(agent, body.texts)

    @router.get("/events", response_class=StreamingResponse,
                responses={200: {"content": {"text/event-stream": {}},
                                 "description": "server-sent alerts and whispers"}})
    async def events(agent: Annotated[Agent, auth]) -> StreamingResponse:
        """Alerts (supervisors) and whispers (the ticket's agent, supervisors), live."""
        return StreamingResponse(_stream(redis, agent), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return router


def visible(event: QualityEvent, agent: Agent) -> bool:
    """Whether ``agent``'s console gets ``event``."""
    if is_supervisor(agent):
        return True
    if event.type is EventKind.WHISPER and event.whisper is not None:
        return event.whisper.to_agent == agent.username
    return False


async def _stream(redis: aioredis.Redis, agent: Agent) -> AsyncIterator[str]:
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(qa_events_channel())
    try:
        yield "retry: 3000\nevent: ready\ndata: {}\n\n"
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True,
                                               timeout=PING_SECONDS)
            if message is None:
                yield ": ping\n\n"
                continue
            event = decode(message["data"])
            if event is not None and visible(event, agent):
                yield f"event: {event.type.value}\ndata: {event.model_dump_json()}\n\n"
    finally:
        with contextlib.suppress(RedisError, OSError):
            await pubsub.unsubscribe()
        await pubsub.aclose()  # type: ignore[no-untyped-call]
