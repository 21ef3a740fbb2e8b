"""The store tells kefu an order changed: ``POST /api/v1/orders/events`` (the order-event webhook).

The store's backend posts ``{"event_id", "order_id", "event"?}`` when something happens to an
order; kefu reads the order from the order system and tells the conversations watching it, the
same way as the poller (:meth:`orders.proactive.ProactiveService.tell`: template, once per order
and conversation, daily limit, opt-out, transcript), but at once instead of at the next poll.

Authentication: the body is signed with the secret both sides hold (``KEFU_ORDERS_WEBHOOK_SECRET``),
``X-Kefu-Signature: sha256=<hex HMAC-SHA256 of "{timestamp}.{body}">`` with
``X-Kefu-Timestamp: <unix seconds>``; compared in constant time, and a timestamp more than
``KEFU_ORDERS_WEBHOOK_TOLERANCE_SECONDS`` away from now is refused (a replayed request). Without
a secret the webhook answers 404 to everyone: closed, never open.

Answers: 200 with what was told (a repeated ``event_id`` within 7 days: the first outcome,
``duplicate: true``, nothing told again); 401 unsigned or a wrong signature; 403 an old
timestamp; 422 a body that is not an event; 404 an order the order system does not know; 503
the order system did not answer, or the same id is being handled at this moment (the event is
not recorded as handled: the store retries it). A gateway that dies mid-event holds its id for
60 s at most; telling is idempotent underneath too (each event once per order and conversation).

Errors (in :mod:`orders.errors`)::

    WebhookNotConfigured   no KEFU_ORDERS_WEBHOOK_SECRET → 404
    WebhookUnauthorized    no or a wrong signature → 401
    WebhookExpired         a timestamp outside the tolerance → 403
    EventInProgress        the same event id is being handled right now → 503 (Retry-After)
"""

# No postponed annotations: FastAPI reads the route's annotations at runtime.
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import APIRouter, Header, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kefu.keys import order_event_key
from orders.errors import (
    EventInProgress,
    OrderNotFound,
    OrderSystemNotConfigured,
    WebhookExpired,
    WebhookNotConfigured,
    WebhookUnauthorized,
)
from orders.proactive import OrderEvent, ProactiveService

logger = logging.getLogger(__name__)

PATH = "/api/v1/orders/events"
SIGNATURE_HEADER = "X-Kefu-Signature"
TIMESTAMP_HEADER = "X-Kefu-Timestamp"
EVENT_TTL = timedelta(days=7)  # a repeated event id within this is told once
HANDLING = "handling"  # the event key's value while its first delivery is being handled
CLAIM_TTL = timedelta(seconds=60)  # a gateway that died handling it lets the retry in after this


class OrderEventIn(BaseModel):
    """What the store posts: this order changed (and, if it knows, how)."""

    model_config = ConfigDict(extra="ignore")

    event_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")
    order_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
    event: OrderEvent | None = None  # None: "the order changed", kefu reads what from the order


class EventOutcome(BaseModel):
    """What kefu did with one event."""

    event_id: str
    order_id: str
    duplicate: bool = False  # this event id was handled before: nothing told again
    events: list[OrderEvent] = Field(default_factory=list)  # the events considered
    told: int = 0  # proactive messages sent into conversations


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value of ``body`` sent at ``timestamp`` ("sha256=<hex>")."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str | None, signature: str | None, body: bytes, *,
           now: float, tolerance: int) -> None:
    """Refuse a request not signed with ``secret``, or signed too long ago (or ahead)."""
    if not timestamp or not signature:
        raise WebhookUnauthorized(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}")
    expected = sign(secret, timestamp, body).encode()
    if not hmac.compare_digest(expected, signature.strip().encode("utf-8", "replace")):
        raise WebhookUnauthorized("the signature does not match the body and timestamp")
    try:
        skew = int(abs(now - int(timestamp)))
    except ValueError as exc:
        raise WebhookUnauthorized(f"{TIMESTAMP_HEADER} is not unix seconds") from exc
    if skew > tolerance:
        raise WebhookExpired(f"the timestamp is {skew} s from now (at most {tolerance} s)",
                             skew_seconds=skew)


class OrderEventHandler:
    """Tells an order's watchers about one store event, once per event id."""

    def __init__(self, redis: aioredis.Redis, proactive: ProactiveService) -> None:
        self._redis = redis
        self._proactive = proactive

    async def handle(self, event: OrderEventIn) -> EventOutcome:
        """Read the order, tell its watchers; a repeated id gets the first outcome."""
        key = order_event_key(event.event_id)
        if not await self._redis.set(key, HANDLING, nx=True,
                                     ex=int(CLAIM_TTL.total_seconds())):
            return await self._repeated(key, event)
        try:
            outcome = await self._tell(event)
        except BaseException:
            await self._redis.delete(key)  # not handled: the store's retry is welcome
            raise
        await self._redis.set(key, outcome.model_dump_json(), ex=int(EVENT_TTL.total_seconds()))
        logger.info("store event %s: %s of %s, told %d", event.event_id,
                    [e.value for e in outcome.events], event.order_id, outcome.told)
        return outcome

    async def _tell(self, event: OrderEventIn) -> EventOutcome:
        system = self._proactive.system
        if system is None:
            raise OrderSystemNotConfigured("no order system is configured (KEFU_ORDERS_URL)")
        order = await system.order(event.order_id)
        if order is None:
            raise OrderNotFound(f"no order {event.order_id}", order_id=event.order_id)
        events = [event.event] if event.event else self._proactive.shown(order)
        told = await self._proactive.tell(order, events)
        return EventOutcome(event_id=event.event_id, order_id=event.order_id, events=events,
                            told=len(told))

    async def _repeated(self, key: str, event: OrderEventIn) -> EventOutcome:
        first = await self._redis.get(key)
        text = first.decode() if isinstance(first, bytes) else first
        if text is None or text == HANDLING:
            raise EventInProgress(f"event {event.event_id} is being handled; retry it",
                                  event_id=event.event_id)
        return EventOutcome.model_validate_json(text).model_copy(
            update={"duplicate": True, "told": 0})


def create_router(handler: OrderEventHandler, secret: str | None, *, tolerance: int = 300,
                  clock: Callable[[], float] = time.time) -> APIRouter:
    """The webhook route; ``secret`` ``None`` keeps it closed."""
    router = APIRouter(tags=["orders"])

    @router.post(PATH, responses={401: {"description": "unsigned or a wrong signature"},
                                  403: {"description": "a timestamp outside the tolerance"},
                                  404: {"description": "no webhook secret, or no such order"},
                                  422: {"description": "not an order event"},
                                  503: {"description": "the order system did not answer, or the "
                                                        "same event is being handled: retry"}},
                 openapi_extra={"requestBody": {"required": True, "content": {
                     "application/json": {"schema": OrderEventIn.model_json_schema()}}}})
    async def order_event(request: Request,
                          x_kefu_timestamp: Annotated[str | None, Header()] = None,
                          x_kefu_signature: Annotated[str | None, Header()] = None,
                          ) -> EventOutcome:
        """The store says an order changed: tell the conversations watching it (signed)."""
        if secret is None:
            raise WebhookNotConfigured("the order-event webhook is closed "
                                       "(KEFU_ORDERS_WEBHOOK_SECRET is not set)")
        body = await request.body()
        verify(secret, x_kefu_timestamp, x_kefu_signature, body, now=clock(),
               tolerance=tolerance)
        return await handler.handle(_parse(body))

    return router


def _parse(body: bytes) -> OrderEventIn:
    try:
        return OrderEventIn.model_validate_json(body)
    except ValidationError as exc:
        errors: list[Any] = json.loads(exc.json(include_url=False, include_context=False))
        raise RequestValidationError(errors) from exc
