"""The supervisor's HTTP API under ``/api/v1/quality`` and its live event stream.

Routes only translate: they authenticate the agent (the console's session token), call
:class:`~quality.service.QualityService` and return its models; errors map to HTTP in one place
(`kefu.http`).
"""

# No ``from __future__ import annotations``: FastAPI reads the route annotations at runtime and
# they refer to the per-router ``auth`` dependency, a closure variable.

import contextlib
from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import StreamingResponse
from redis.exceptions import RedisError

from handoff.models import Ticket
from kefu.accounts import Agent
from kefu.conversation import Turn
from kefu.http import Authenticate, agent_dependency
from kefu.keys import qa_events_channel
from kefu.pages import add_page
from quality.export import aggregates_csv, records_csv
from quality.models import (
    Alert,
    AngerRequest,
    AuditEntry,
    DrillItem,
    EventKind,
    QualityEvent,
    ReviewRequest,
    SaveRulesRequest,
    Whisper,
    WhisperRequest,
)
from quality.reports import QaRecord, Report
from quality.rules import RuleSet
from quality.service import QualityService, is_supervisor
from quality.store import decode

PING_SECONDS = 15.0
DASHBOARD_DIR = Path(__file__).parent / "dashboard"
SCOPE = Query(pattern=r"^(store|g:[\w-]{1,32}|a:[\w.@-]{1,64})$")


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

    _report_routes(router, service, auth)
    outer = APIRouter()
    outer.include_router(router)
    add_page(outer, "/quality", DASHBOARD_DIR, title="质检与报表", subtitle="Quality & reports")
    return outer


def _report_routes(router: APIRouter, service: QualityService, auth: Any) -> None:
    @router.get("/report")
    async def report(agent: Annotated[Agent, auth], day: date,
                     scope: Annotated[str, SCOPE] = "store") -> Report:
        """The day's figures: store-wide, a group (`g:aftersale`) or an agent (`a:li`)."""
        return await service.report(agent, day, scope)

    @router.get("/report/drill")
    async def drill(agent: Annotated[Agent, auth], day: date,
                    figure: Annotated[str, Query(max_length=100)]) -> list[DrillItem]:
        """The conversations behind a figure (`handoff:complaint`, `csat:1`, `wrong` …)."""
        return await service.drill(agent, day, figure)

    @router.get("/records")
    async def records(agent: Annotated[Agent, auth], day: date,
                      scope: Annotated[str, SCOPE] = "store") -> list[QaRecord]:
        """QA records of the day's closed tickets (agents: their own)."""
        return await service.records(agent, day, scope)

    @router.post("/records/{ticket_id}/review")
    async def review(ticket_id: str, body: ReviewRequest,
                     agent: Annotated[Agent, auth]) -> QaRecord:
        """A supervisor's manual score (1–5) and comment."""
        return await service.review(agent, ticket_id, body.score, body.comment)

    @router.get("/export/records.csv", response_class=Response,
                responses={200: {"content": {"text/csv": {}}}})
    async def records_export(agent: Annotated[Agent, auth], day: date,
                             scope: Annotated[str, SCOPE] = "store") -> Response:
        """One row per closed ticket of the day (ids, channel, times, reason, group, agent…)."""
        rows = records_csv(await service.records(agent, day, scope))
        return _csv_response(rows, f"kefu-qa-records-{day}.csv")

    @router.get("/export/aggregates.csv", response_class=Response,
                responses={200: {"content": {"text/csv": {}}}})
    async def aggregates_export(agent: Annotated[Agent, auth], day: date,
                                scope: Annotated[str, SCOPE] = "store") -> Response:
        """The day's figures, one (figure, key, value) per row."""
        rows = aggregates_csv(await service.report(agent, day, scope))
        return _csv_response(rows, f"kefu-qa-aggregates-{day}.csv")


def _csv_response(text: str, filename: str) -> Response:
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


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
