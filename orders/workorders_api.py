"""The back office's work-order routes, for the console's work-order list (agents only).

``GET /api/v1/work-orders`` (the agent's groups; a manager sees all), ``POST …/{id}/claim``,
``POST …/{id}/notes``, ``POST …/{id}/close``, ``GET …/{id}/photo`` (the shopper's photo, fetched
from the channel it came by: Telegram's servers, or the web chat's photos in Redis). An agent
acts only on work orders of their groups.
"""

# No postponed annotations: FastAPI reads the routes' closure dependencies at runtime.
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from kefu.accounts import Agent, AgentRole
from kefu.errors import NotAuthorized
from kefu.http import Authenticate, agent_dependency
from orders.aftersale import FIELD_LABELS, FlowField, photo_source, spec_of
from orders.errors import PhotoUnavailable
from orders.workorders import WorkOrder, WorkOrderService, WorkOrderStatus

PREFIX = "/api/v1/work-orders"
PhotoFetcher = Callable[[str, str], Awaitable[tuple[bytes, str]]]
"""A channel's download of a shopper's photo by its file id and the work order's conversation
(a web chat photo is given only to the conversation it was uploaded in): (bytes, media type)."""


class NoteIn(BaseModel):
    """A note, or what was done when closing."""

    text: str = Field(min_length=1, max_length=500)


def _view(order: WorkOrder, now: datetime) -> dict[str, Any]:
    body: dict[str, Any] = order.model_dump(mode="json")
    body["overdue"] = order.overdue(now)
    zh, en = spec_of(order.kind).names
    body["kind_name"] = f"{zh} {en[:1].upper()}{en[1:]}"
    body["field_labels"] = {key: _label(key) for key in order.fields}
    return body


def _label(key: str) -> str:
    """"照片 Photo" for ``photo``; an unknown field by its key."""
    try:
        return " ".join(FIELD_LABELS[FlowField(key)])
    except ValueError:
        return key


def create_router(service: WorkOrderService, authenticate: Authenticate,
                  photos: Mapping[str, PhotoFetcher] | None = None) -> APIRouter:
    """The work-order routes over ``service``; ``photos``: per channel, how to fetch a photo."""
    router = APIRouter(prefix=PREFIX, tags=["work orders"])
    current_agent = agent_dependency(authenticate)
    Current = Annotated[Agent, Depends(current_agent)]

    def groups_of(agent: Agent) -> set[str] | None:
        return None if agent.role is AgentRole.MANAGER else set(agent.groups)

    async def allowed(work_order_id: str, agent: Agent, action: str) -> None:
        order = await service.get(work_order_id)
        mine = groups_of(agent)
        if mine is not None and order.group not in mine:
            raise NotAuthorized(f"{order.id} belongs to {order.group}", agent=agent.username,
                                action=action)

    @router.get("")
    async def list_work_orders(
        agent: Current,
        status: Annotated[list[WorkOrderStatus] | None, Query()] = None,
    ) -> dict[str, Any]:
        """Work orders of the agent's groups, oldest first (filter by ``status``)."""
        found = await service.find(statuses=set(status) if status else None,
                                   groups=groups_of(agent))
        now = datetime.now(UTC)
        return {"work_orders": [_view(o, now) for o in found]}

    @router.post("/{work_order_id}/claim")
    async def claim(work_order_id: str, agent: Current) -> dict[str, Any]:
        """Take an open work order."""
        await allowed(work_order_id, agent, "claim")
        return _view(await service.claim(work_order_id, agent.username), datetime.now(UTC))

    @router.post("/{work_order_id}/notes")
    async def note(work_order_id: str, body: NoteIn, agent: Current) -> dict[str, Any]:
        """Add an internal note."""
        await allowed(work_order_id, agent, "note")
        return _view(await service.note(work_order_id, agent.username, body.text),
                     datetime.now(UTC))

    @router.post("/{work_order_id}/close")
    async def close(work_order_id: str, body: NoteIn, agent: Current) -> dict[str, Any]:
        """Close with what was done; the shopper is told."""
        await allowed(work_order_id, agent, "close")
        return _view(await service.close(work_order_id, agent.username, body.text),
                     datetime.now(UTC))

    @router.get("/{work_order_id}/photo", response_class=Response,
                responses={200: {"content": {"image/*": {}}}})
    async def photo(work_order_id: str, agent: Current) -> Response:
        """The shopper's photo of the problem, fetched from the channel it came by."""
        await allowed(work_order_id, agent, "photo")
        order = await service.get(work_order_id)
        source = photo_source(order.fields.get(FlowField.PHOTO.value, ""))
        fetch = (photos or {}).get(source[0]) if source else None
        if source is None or fetch is None:
            raise PhotoUnavailable(f"{work_order_id} has no photo this kefu can fetch",
                                   work_order_id=work_order_id)
        try:
            content, media_type = await fetch(source[1], order.conversation_id)
        except Exception as exc:  # the channel's failure, whatever its library raises
            raise PhotoUnavailable(f"{source[0]} did not give the photo of {work_order_id}",
                                   work_order_id=work_order_id) from exc
        return Response(content, media_type=media_type,
                        headers={"Cache-Control": "private, max-age=300"})

    return router
