"""The lease sweeper, a process of its own: a lapsed claim goes back to its queue whatever is down.

A claim is a lease the agent's console keeps alive; when the console vanishes the lease lapses and
the ticket must go back to its queue at its old place. That must not wait for a gateway: with
every gateway down (a deploy, a crash loop) a shopper whose agent left would stay "claimed" for
the whole outage. So the sweeper runs on its own (``python -m handoff.sweeper``: a program of
``make run``'s supervisor, a service in docker-compose and systemd) and needs only Redis.

Several sweepers may run at once (one per host, say): each requeue is one atomic transition, so
a ticket is requeued once. Each sweep leaves a heartbeat (``kefu.keys.sweeper_key``, with a TTL of
three intervals) that the gateways' ``/readyz`` reads. Once an hour it also trims the escalation
stream to its retention (:func:`kefu.escalations.trim_escalations`), for a store whose bot has
been quiet.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence

import redis.asyncio as aioredis

from handoff.service import HandoffService
from handoff.settings import get_settings
from kefu import metrics
from kefu.conversation import ConversationStore
from kefu.escalations import trim_escalations
from kefu.keys import sweeper_key
from kefu.logs import configure
from kefu.redis import async_client

logger = logging.getLogger(__name__)

TRIM_EVERY_SECONDS = 3600.0


async def run_sweeper(service: HandoffService, interval: float = 5.0,
                      redis: aioredis.Redis | None = None) -> None:
    """Requeue tickets whose agent vanished, every ``interval`` seconds, until cancelled.

    With ``redis``, each sweep also leaves the heartbeat ``/readyz`` looks for and, hourly,
    trims the escalation stream.
    """
    trimmed_at = 0.0
    while True:
        try:
            count = await service.requeue_expired()
            metrics.SWEEPS.inc()
            metrics.SWEEPER_REQUEUED.inc(count)
            if count:
                logger.info("sweeper requeued %d ticket(s)", count)
            if redis is not None:
                await redis.set(sweeper_key(), repr(time.time()), ex=max(1, int(interval * 3)))
                if time.monotonic() - trimmed_at > TRIM_EVERY_SECONDS:
                    trimmed_at = time.monotonic()
                    dropped = await trim_escalations(redis)
                    if dropped:
                        logger.info("trimmed %d escalations past their retention", dropped)
        except Exception:  # keep sweeping through Redis hiccups
            metrics.ERRORS.labels("sweeper").inc()
            logger.exception("handoff sweeper failed; retrying in %.1fs", interval)
        await asyncio.sleep(interval)


async def sweeper_alive(redis: aioredis.Redis) -> bool:
    """Whether some sweeper swept within its last three intervals."""
    return bool(await redis.exists(sweeper_key()))


async def _serve(redis_url: str, interval: float) -> None:
    redis = async_client(redis_url)
    service = HandoffService(redis, ConversationStore(redis))
    task = asyncio.create_task(run_sweeper(service, interval, redis))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    logger.info("lease sweeper running every %.1fs on %s", interval, redis_url)
    await stop.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await redis.aclose()
    logger.info("lease sweeper stopped")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m handoff.sweeper``: sweep until SIGTERM."""
    parser = argparse.ArgumentParser(description="requeue tickets whose agent's lease lapsed")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between sweeps")
    parser.add_argument("--redis-url", default=None, help="default: KEFU_REDIS_URL")
    parser.add_argument("--metrics-port", type=int,
                        default=int(os.environ.get("KEFU_SWEEPER_METRICS_PORT", "0")),
                        help="serve Prometheus /metrics on 127.0.0.1:PORT (default: "
                             "KEFU_SWEEPER_METRICS_PORT; 0: off)")
    args = parser.parse_args(argv)
    configure()
    if args.metrics_port:
        metrics.serve_locally(args.metrics_port)
    asyncio.run(_serve(args.redis_url or get_settings().redis_url, args.interval))
    return 0


if __name__ == "__main__":
    sys.exit(main())
