"""The agent console's HTTP API and the console's static files.

Routes only translate: they authenticate the agent (``Authorization: Bearer <token>`` from
``POST /api/v1/agent/login``), call :class:`~handoff.service.HandoffService` and return its
models. Errors are raised, never answered here: the app maps every kefu error to JSON in one place
(`kefu.http`).
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route annotations at runtime and
# they refer to the per-router ``auth`` dependency, a closure variable.

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from handoff.history import HistoryQuery
from handoff.models import (
    CannedAnswer,
    ConsoleConfig,
    HistoryItem,
    LeaseResponse,
    LoginRequest,
    LoginResponse,
    MeResponse,
    MessageRequest,
    PresenceRequest,
    ResolveRequest,
    Ticket,
    TicketStatus,
    TransferRequest,
)
from handoff.photos import PhotoFetcher, TicketPhotos, mark_photos
from handoff.service import HandoffService
from kefu.accounts import Agent
from kefu.conversation import Turn
from kefu.http import agent_dependency, session_token
from kefu.pages import add_page

logger = logging.getLogger(__name__)

CONSOLE_DIR = Path(__file__).parent / "console"
PING_SECONDS = 15.0

KnowledgeSearch = Callable[[str], Awaitable[list[CannedAnswer]]]
"""Knowledge answers matching a search text, best first (the app wires the knowledge service)."""


def create_router(service: HandoffService,
                  knowledge_search: KnowledgeSearch | None = None,
                  photos: Mapping[str, PhotoFetcher] | None = None) -> APIRouter:
    """The console API under ``/api/v1`` and the console itself under ``/console/``.

    ``photos``: per channel, how to fetch a shopper's photo (the app passes the channels').
    """
    router = APIRouter()
    auth = Depends(agent_dependency(service.agents.authenticate))
    _agent_routes(router, service, auth)
    _history_routes(router, service, auth)
    _ticket_routes(router, service, auth)
    _photo_route(router, TicketPhotos(service, photos or {}), auth)
    if knowledge_search is not None:
        _canned_route(router, knowledge_search, auth)
    add_page(router, "/console", CONSOLE_DIR, title="客服工作台", subtitle="Agent console")
    return router


def _agent_routes(router: APIRouter, service: HandoffService, auth: Any) -> None:
    tags: list[str | Any] = ["agent console"]

    @router.post("/api/v1/agent/login", tags=tags, responses={
        401: {"description": "bad login"}, 429: {"description": "too many failed logins"}})
    async def login(body: LoginRequest, request: Request) -> LoginResponse:
        """Log in with a username and password (agents are created with `kefu agent add`).

        Failed logins are throttled per account and per address (429 with Retry-After).
        """
        client = request.client.host if request.client else None
        token, agent = await service.agents.login(body.username, body.password, client=client)
        return LoginResponse(token=token, expires_in=service.settings.session_ttl_seconds,
                             agent=agent)

    @router.post("/api/v1/agent/logout", tags=tags, status_code=204)
    async def logout(agent: Annotated[Agent, auth],
                     token: Annotated[str, Depends(session_token)]) -> Response:
        """End the session; the agent goes offline."""
        await service.agents.logout(token, agent.username)
        return Response(status_code=204)

    @router.get("/api/v1/agent/me", tags=tags)
    async def me(agent: Annotated[Agent, auth]) -> MeResponse:
        """The logged-in agent and the console's timings."""
        settings = service.settings
        return MeResponse(agent=agent, config=ConsoleConfig(
            groups=settings.groups, lease_seconds=settings.lease_seconds,
            heartbeat_seconds=settings.heartbeat_seconds, sla_seconds=settings.sla_seconds,
            timezone=settings.timezone))

    @router.post("/api/v1/agent/presence", tags=tags)
    async def presence(body: PresenceRequest, agent: Annotated[Agent, auth]) -> Agent:
        """Go online (taking tickets), away or offline."""
        return await service.agents.set_presence(agent.username, body.status)

    @router.get("/api/v1/agents", tags=tags)
    async def agents(_agent: Annotated[Agent, auth]) -> list[Agent]:
        """Every agent with presence and groups (to pick a transfer target)."""
        return await service.agents.all()

    @router.get("/api/v1/agent/events", tags=tags, response_class=StreamingResponse,
                responses={200: {"content": {"text/event-stream": {}},
                                 "description": "server-sent handoff events"}})
    async def events(agent: Annotated[Agent, auth]) -> StreamingResponse:
        """Server-sent events for the agent's groups and tickets (keeps presence fresh)."""
        return StreamingResponse(_event_stream(service, agent), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _event_stream(service: HandoffService, agent: Agent) -> AsyncIterator[str]:
    async with service.events.subscribe() as feed:
        yield "retry: 3000\nevent: ready\ndata: {}\n\n"
        while True:
            event = await feed.get(timeout=PING_SECONDS)
            if event is None:
                await service.agents.touch(agent.username)
                yield ": ping\n\n"
            elif event.visible_to(agent):
                if event.turn is not None:  # a live photo turn reads like a fetched one
                    event = event.model_copy(update={"turn": mark_photos([event.turn])[0]})
                yield f"event: {event.type.value}\ndata: {event.model_dump_json()}\n\n"


def _ticket_routes(router: APIRouter, service: HandoffService, auth: Any) -> None:
    tags: list[str | Any] = ["tickets"]

    @router.get("/api/v1/tickets", tags=tags)
    async def tickets(agent: Annotated[Agent, auth],
                      status: TicketStatus | None = None, group: str | None = None,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[Ticket]:
        """Tickets of the agent's groups with their context packets, queue order first.

        No status: every open ticket. `resolved`: closed by an agent, newest first.
        """
        return await service.list_tickets(status, agent=agent, group=group, limit=limit)

    @router.post("/api/v1/tickets/next", tags=tags)
    async def claim_next(agent: Annotated[Agent, auth],
                         group: str | None = None) -> Ticket | None:
        """Claim the best waiting ticket of the agent's groups (null when none waits)."""
        return await service.claim_next(agent, group)

    @router.get("/api/v1/tickets/{ticket_id}", tags=tags)
    async def ticket(ticket_id: str, agent: Annotated[Agent, auth]) -> Ticket:
        """One ticket with its context packet."""
        return await service.get(ticket_id, agent)

    @router.get("/api/v1/tickets/{ticket_id}/transcript", tags=tags)
    async def transcript(ticket_id: str, agent: Annotated[Agent, auth],
                         after: str | None = None) -> list[Turn]:
        """The live transcript, after the turn id `after` when given.

        A shopper's photo has its file id in `meta.photo`
        (`GET /api/v1/tickets/{id}/photos/{ref}` gives it).
        """
        return mark_photos(await service.transcript(ticket_id, agent, after=after))

    @router.post("/api/v1/tickets/{ticket_id}/claim", tags=tags,
                 responses={409: {"description": "already claimed"}})
    async def claim(ticket_id: str, agent: Annotated[Agent, auth]) -> Ticket:
        """Take the ticket; keep it with heartbeats. Of two agents at once, one gets 409."""
        return await service.claim(ticket_id, agent)

    @router.post("/api/v1/tickets/{ticket_id}/release", tags=tags)
    async def release(ticket_id: str, agent: Annotated[Agent, auth]) -> Ticket:
        """Put the ticket back in its queue at its old position."""
        return await service.release(ticket_id, agent)

    @router.post("/api/v1/tickets/{ticket_id}/heartbeat", tags=tags,
                 responses={409: {"description": "lease expired"}})
    async def heartbeat(ticket_id: str, agent: Annotated[Agent, auth]) -> LeaseResponse:
        """Renew the agent's lease on the ticket."""
        seconds = await service.heartbeat(ticket_id, agent)
        return LeaseResponse(ticket_id=ticket_id, agent=agent.username, lease_seconds=seconds)

    @router.post("/api/v1/tickets/{ticket_id}/messages", tags=tags, status_code=201)
    async def message(ticket_id: str, body: MessageRequest,
                      agent: Annotated[Agent, auth]) -> Turn:
        """Send a message to the shopper."""
        return await service.reply(ticket_id, agent, body.text)

    @router.post("/api/v1/tickets/{ticket_id}/transfer", tags=tags)
    async def transfer(ticket_id: str, body: TransferRequest,
                       agent: Annotated[Agent, auth]) -> Ticket:
        """Move the ticket to another group's queue or to another online agent."""
        return await service.transfer(ticket_id, agent, group=body.group, to_agent=body.agent,
                                      note=body.note)

    @router.post("/api/v1/tickets/{ticket_id}/resolve", tags=tags)
    async def resolve(ticket_id: str, body: ResolveRequest,
                      agent: Annotated[Agent, auth]) -> Ticket:
        """Close with a note; with `return_to_bot` the bot answers again, history included."""
        return await service.resolve(ticket_id, agent, note=body.note,
                                     return_to_bot=body.return_to_bot)


def _photo_route(router: APIRouter, photos: TicketPhotos, auth: Any) -> None:
    @router.get("/api/v1/tickets/{ticket_id}/photos/{ref}", tags=["tickets"],
                response_class=Response, responses={
                    200: {"content": {"image/*": {}}},
                    403: {"description": "a ticket of another group"},
                    404: {"description": "not a photo of this ticket's chat, or gone"}})
    async def photo(ticket_id: str, ref: str, agent: Annotated[Agent, auth]) -> Response:
        """A photo the shopper sent in this ticket's chat (`meta.photo` of its transcript turn).

        For the agents who may read the transcript; the picture comes from the channel it came by
        (the web chat's photos in Redis, Telegram's servers).
        """
        content, media_type = await photos.get(ticket_id, agent, ref)
        return Response(content, media_type=media_type,
                        headers={"Cache-Control": "private, max-age=300"})


def _history_routes(router: APIRouter, service: HandoffService, auth: Any) -> None:
    tags: list[str | Any] = ["history"]
    zone = ZoneInfo(service.settings.timezone)

    @router.get("/api/v1/history", tags=tags)
    async def history(agent: Annotated[Agent, auth],
                      q: Annotated[str, Query(max_length=200)] = "",
                      date_from: date | None = None, date_to: date | None = None,
                      limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[HistoryItem]:
        """Resolved chats of the agent's groups (all for a manager), newest first.

        `q` finds the shopper (name, visitor label), an order number or words said; `date_from`
        and `date_to` (the shop's days) bound the closing time.
        """
        since = datetime.combine(date_from, time.min, zone) if date_from else None
        until = datetime.combine(date_to + timedelta(days=1), time.min, zone) if date_to else None
        return await service.history(agent, HistoryQuery(text=q, since=since, until=until,
                                                         limit=limit))

    @router.get("/api/v1/history/{ticket_id}", tags=tags)
    async def history_item(ticket_id: str, agent: Annotated[Agent, auth]) -> HistoryItem:
        """One closed chat, read-only (its transcript: `GET /api/v1/tickets/{id}/transcript`)."""
        return await service.history_item(ticket_id, agent)

    @router.post("/api/v1/history/{ticket_id}/reopen", tags=tags,
                 responses={409: {"description": "cannot be reopened"}})
    async def reopen(ticket_id: str, agent: Annotated[Agent, auth]) -> Ticket:
        """Take back a chat whose shopper wrote again within a day (a new ticket, claimed)."""
        return await service.reopen(ticket_id, agent)


def _canned_route(router: APIRouter, search: KnowledgeSearch, auth: Any) -> None:
    @router.get("/api/v1/knowledge/canned", tags=["agent console"])
    async def canned(_agent: Annotated[Agent, auth],
                     q: Annotated[str, Query(min_length=1, max_length=500)]) -> list[CannedAnswer]:
        """Knowledge answers matching `q`, to insert into a reply."""
        return await search(q)
