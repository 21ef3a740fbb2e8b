"""Prometheus metrics of a kefu process, defined once, and the ``/metrics`` route serving them.

Every metric lives in this module so the names, labels and buckets are documented in one place
(README "Metrics"); the code that observes them imports the object and calls ``inc``/``observe``.
Counters count what *this* process did: Prometheus sums the processes (``sum by (...)``), so a
message counted by the gateway that kept it is never counted twice.

``/metrics`` is internal: it answers loopback clients, or a caller showing
``Authorization: Bearer <KEFU_METRICS_TOKEN>`` when that token is set (a Prometheus on another
host). Anyone else gets 404, as if there were no such route.
"""

from __future__ import annotations

import hmac
import os
import time

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    start_http_server,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REGISTRY = CollectorRegistry(auto_describe=True)
"""kefu's own registry: the metrics below and the process's CPU, memory and open files."""
ProcessCollector(registry=REGISTRY)

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_WAIT = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

MESSAGES = Counter("kefu_messages_total", "Messages kept in conversations, by channel and role "
                   "(shopper, bot, agent, system).", ["channel", "role"], registry=REGISTRY)
DECISIONS = Counter("kefu_decisions_total", "Knowledge decisions by kind (answer, clarify, "
                    "handoff).", ["kind"], registry=REGISTRY)
HANDOFFS = Counter("kefu_handoffs_total", "Handoff tickets opened, by reason.", ["reason"],
                   registry=REGISTRY)
QUEUE_LENGTH = Gauge("kefu_queue_length", "Tickets waiting per skill group (sampled every few "
                     "seconds by the quality monitor).", ["group"], registry=REGISTRY,
                     multiprocess_mode="max")
QUEUE_WAIT = Histogram("kefu_queue_wait_seconds", "Seconds a ticket waited before an agent "
                       "claimed it.", ["group"], buckets=_WAIT, registry=REGISTRY)
RASA_LATENCY = Histogram("kefu_rasa_seconds", "Round trip of one message through Rasa's REST "
                         "channel (actions included).", buckets=_LATENCY, registry=REGISTRY)
KNOWLEDGE_LATENCY = Histogram("kefu_knowledge_seconds", "One knowledge decision (embedding, "
                              "retrieval, decision), in the actions.", buckets=_LATENCY,
                              registry=REGISTRY)
HTTP_LATENCY = Histogram("kefu_http_seconds", "HTTP requests by route template and status "
                         "class; the actions' webhook is route /webhook.",
                         ["route", "method", "status"], buckets=_LATENCY, registry=REGISTRY)
ERRORS = Counter("kefu_errors_total", "Failures by where they happened (http_5xx, rasa, "
                 "knowledge, quality, sweeper).", ["where"], registry=REGISTRY)
QA_ALERTS = Counter("kefu_qa_alerts_total", "Quality alerts raised, by rule and action "
                    "(alert, block).", ["rule", "action"], registry=REGISTRY)
SWEEPS = Counter("kefu_sweeper_runs_total", "Lease sweeps done by this sweeper process.",
                 registry=REGISTRY)
SWEEPER_REQUEUED = Counter("kefu_sweeper_requeued_total", "Tickets whose agent's lease lapsed, "
                           "put back in their queue by the sweeper.", registry=REGISTRY)
QA_CHECK = Histogram("kefu_qa_check_seconds", "The synchronous rule check of one message.",
                     buckets=(0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01),
                     registry=REGISTRY)


def channel_of(conversation_id: str) -> str:
    """The channel part of a conversation id (``web:alice`` → ``web``)."""
    return conversation_id.split(":", 1)[0] or "unknown"


def allowed(request: Request, token: str | None = None) -> bool:
    """Whether ``request`` may read ``/metrics``: loopback, or the metrics token when one is set."""
    token = os.environ.get("KEFU_METRICS_TOKEN") if token is None else token
    if token:
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
    host = request.client.host if request.client else ""
    return host in ("127.0.0.1", "::1", "localhost", "testclient")


def serve_locally(port: int) -> None:
    """Serve this registry on ``http://127.0.0.1:{port}/metrics`` from a daemon thread.

    For processes without an HTTP app of their own, such as the lease sweeper.
    """
    start_http_server(port, addr="127.0.0.1", registry=REGISTRY)


def create_router() -> APIRouter:
    """``GET /metrics`` in Prometheus' text format (internal, see the module docstring)."""
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if not allowed(request):
            return Response(status_code=404)
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router


class TimingMiddleware:
    """Pure ASGI middleware observing :data:`HTTP_LATENCY` and 5xx :data:`ERRORS`.

    Streams (server-sent events) are timed until their first body byte, not their whole life.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: D102
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
                _observe(scope, status[0], time.perf_counter() - start)
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            _observe(scope, 500, time.perf_counter() - start)
            raise


def _observe(scope: Scope, status: int, seconds: float) -> None:
    route = scope.get("route")
    path = getattr(route, "path", None) or "unmatched"
    HTTP_LATENCY.labels(path, scope.get("method", ""), f"{status // 100}xx").observe(seconds)
    if status >= 500:
        ERRORS.labels("http_5xx").inc()

