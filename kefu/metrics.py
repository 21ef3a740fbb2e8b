"""Prometheus metrics of a kefu process, defined once, and the ``/metrics`` route serving them.

Every metric lives in this module so the names, labels and buckets are documented in one place
(README "Metrics"); the code that observes them imports the object and calls ``inc``/``observe``.
Counters count what *this* process did: Prometheus sums the processes (``sum by (...)``), so a
message counted by the gateway that kept it is never counted twice.

``/metrics`` is internal: it answers loopback clients, or a caller showing
``Authorization: Bearer <KEFU_METRICS_TOKEN>`` when that token is set (a Prometheus on another
host). Anyone else gets 404, as if there were no such route.

Processes without an HTTP app of their own serve the registry on ``127.0.0.1:PORT`` only
(:func:`serve_locally`); ``python -m kefu.metrics --port N MODULE ARGS…`` runs any module that way
(the demo order service, the order-events poller). The gateway's ``/metrics`` also carries Redis'
``INFO`` figures (:class:`RedisInfo`), read when scraped, so Redis needs no exporter of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
import os
import runpy
import sys
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

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
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:  # the gateway's only: a process serving its own port loads no FastAPI or redis
    import redis.asyncio as aioredis
    from fastapi import APIRouter, Request, Response
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

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
PROCESS_EVENTS = Counter("kefu_process_events_total", "supervisord's process events seen by the "
                         "watchdog, by program and event (died, backoff, fatal, running_again).",
                         ["program", "event"], registry=REGISTRY)

REDIS_INFO_TIMEOUT = 2.0  # seconds a scrape waits for Redis' INFO before reporting it down

# (INFO field, metric name, help, counter?) of what the gateway exports about Redis
_REDIS_FIELDS = (
    ("used_memory", "kefu_redis_used_memory_bytes", "Bytes Redis has allocated.", False),
    ("used_memory_rss", "kefu_redis_used_memory_rss_bytes", "Redis' resident memory.", False),
    ("maxmemory", "kefu_redis_maxmemory_bytes", "Redis' memory limit (0: none).", False),
    ("connected_clients", "kefu_redis_connected_clients", "Client connections.", False),
    ("blocked_clients", "kefu_redis_blocked_clients", "Clients in a blocking call (XREAD "
     "BLOCK: the console's and supervisors' event streams).", False),
    ("instantaneous_ops_per_sec", "kefu_redis_ops_per_second", "Commands per second (Redis' "
     "own sample of the last seconds).", False),
    ("total_commands_processed", "kefu_redis_commands_processed", "Commands Redis ran since "
     "it started.", True),
    ("keyspace_hits", "kefu_redis_keyspace_hits", "Reads that found their key.", True),
    ("keyspace_misses", "kefu_redis_keyspace_misses", "Reads that did not.", True),
    ("evicted_keys", "kefu_redis_evicted_keys", "Keys evicted for the memory limit.", True),
    ("expired_keys", "kefu_redis_expired_keys", "Keys removed at their TTL.", True),
)


class RedisInfo(Collector):
    """Redis' ``INFO`` figures as metrics (memory, clients, ops), from the last :meth:`refresh`.

    The gateway refreshes it on every scrape of its ``/metrics``: one ``INFO`` command, so the
    figures are as fresh as the scrape and no exporter process is needed.
    """

    def __init__(self) -> None:
        self.info: Mapping[str, Any] | None = None
        self.refreshed = False  # a process that never reads INFO exports nothing about Redis

    async def refresh(self, redis: aioredis.Redis) -> None:
        """Read ``INFO`` now; on failure (or after :data:`REDIS_INFO_TIMEOUT`) Redis is down."""
        try:
            self.info = await asyncio.wait_for(redis.info(), REDIS_INFO_TIMEOUT)
            self.refreshed = True
        except Exception:
            logger.warning("Redis INFO for /metrics failed", exc_info=True)
            self.info, self.refreshed = None, True
            ERRORS.labels("redis").inc()

    def collect(self) -> Iterator[Metric]:  # noqa: D102
        if not self.refreshed:
            return
        if self.info is None:
            yield GaugeMetricFamily("kefu_redis_up", "1 when the last INFO answered.", value=0)
            return
        info = self.info
        yield GaugeMetricFamily("kefu_redis_up", "1 when the last INFO answered.", value=1)
        for field, name, text, counter in _REDIS_FIELDS:
            if field in info:
                family = CounterMetricFamily if counter else GaugeMetricFamily
                yield family(name, text, value=float(info[field]))
        keys = GaugeMetricFamily("kefu_redis_keys", "Keys per database.", labels=["db"])
        for db, stats in info.items():
            if str(db).startswith("db") and isinstance(stats, Mapping):
                keys.add_metric([str(db)], float(stats.get("keys", 0)))
        yield keys


REDIS_INFO = RedisInfo()
"""Exported by the process that refreshes it (the gateway's ``/metrics``); empty elsewhere."""
REGISTRY.register(REDIS_INFO)


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


def create_router(redis: aioredis.Redis | None = None) -> APIRouter:
    """``GET /metrics`` in Prometheus' text format (internal, see the module docstring).

    With ``redis``, each scrape also reads its ``INFO`` (:class:`RedisInfo`).
    """
    from fastapi import APIRouter
    from starlette.responses import Response

    async def metrics(request: Request) -> Response:
        request.scope["route"] = route  # TimingMiddleware's label; only FastAPI's routes set it
        if not allowed(request):
            return Response(status_code=404)
        if redis is not None:
            await REDIS_INFO.refresh(redis)
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    router = APIRouter()  # a plain route: the request is passed, not read from annotations
    router.add_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
    route = router.routes[-1]
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



def main(argv: list[str] | None = None) -> int:
    """``python -m kefu.metrics --port N MODULE ARGS…``: run MODULE with this registry served.

    The module runs as ``python -m MODULE ARGS…`` would, in this process, while a daemon thread
    serves :data:`REGISTRY` (its ``process_*`` figures, and any kefu metric the module observes)
    on ``http://127.0.0.1:N/metrics``.
    """
    parser = argparse.ArgumentParser(prog="python -m kefu.metrics",
                                     description="run a module with /metrics on 127.0.0.1:PORT")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("module")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    serve_locally(args.port)
    sys.argv = [args.module, *args.args]
    runpy.run_module(args.module, run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    from kefu import metrics as _imported  # one registry, the one the module's code imports

    sys.exit(_imported.main())
