"""Kill one process of a running stack under load from simulated shoppers; what they saw.

Shared by the fault tests (``tests/e2e/test_faults.py``) and ``benchmarks/faults.py``. The stack
is ``make run``'s (:func:`kefu.stack.run_stack`, supervisord). While ``shoppers`` simulated
shoppers (:mod:`tests.helpers.shoppers`) type demo questions and sometimes ask for a person, one
process is killed with SIGKILL; the load goes on for a while after supervisord restarted it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx

from handoff.service import HandoffService
from handoff.settings import HandoffSettings
from kefu.accounts import Presence
from kefu.conversation import ConversationStore
from kefu.redis import async_client
from kefu.stack import StackConfig
from tests.helpers.shoppers import Kept, Tally, check_kept, shop

BEFORE_SECONDS = 4.0  # load before the kill
AFTER_SECONDS = 20.0  # load after the process is back
READY_WITHIN_SECONDS = 240.0  # every part answers again within this (Rasa loads a model)


class NotInTime(AssertionError):
    """Something the fault run waits for did not happen in time."""


@dataclass
class FaultRun:
    """One kill under load: what the shoppers saw and how long the stack took to heal."""

    process: str
    tally: Tally
    kept: Kept
    back_seconds: float  # from the kill until supervisord had it running again
    ready_seconds: float  # from the end of the load until readyz said every part was ready

    def summary(self) -> str:
        t = self.tally
        return (f"{self.process}: {t.sent} sent, {t.replies} replies, {t.empty} empty, "
                f"statuses {dict(t.status)}, {t.connection_errors} connection errors, "
                f"{t.not_kept} resent after retry_after, {t.started_over} started over, "
                f"{t.unanswered} unanswered, "
                f"{len(self.kept.lost_messages)} lost, "
                f"{len(t.asked_for_a_person)} asked for a person, "
                f"{len(self.kept.missing_tickets)} without a ticket, "
                f"back in {self.back_seconds:.1f}s, ready in {self.ready_seconds:.1f}s")


@contextlib.asynccontextmanager
async def agents_online(stack: StackConfig) -> AsyncIterator[None]:
    """An agent of every group at a console, so a request for a person queues for one."""
    redis = async_client(stack.redis_url)
    service = HandoffService(redis, ConversationStore(redis), HandoffSettings(bcrypt_rounds=4))
    name = f"fault-{uuid.uuid4().hex[:6]}"
    await service.agents.add(name, "fault-密码-password", list(service.settings.groups))
    await service.agents.set_presence(name, Presence.ONLINE)

    async def keep_fresh() -> None:
        while True:
            await asyncio.sleep(10)
            with contextlib.suppress(Exception):  # Redis may be the one killed
                await service.agents.touch(name)

    fresh = asyncio.create_task(keep_fresh())
    try:
        yield
    finally:
        fresh.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await fresh
        with contextlib.suppress(Exception):  # gone: later tests see nobody of theirs online
            await service.agents.remove(name)
        await redis.aclose()


async def leave_queues(stack: StackConfig, tally: Tally) -> int:
    """The run's shoppers leave the queues (their tickets closed): later tests start clean."""
    redis = async_client(stack.redis_url)
    service = HandoffService(redis, ConversationStore(redis), HandoffSettings(bcrypt_rounds=4))
    left = 0
    try:
        for conversation in {*tally.kept, *tally.asked_for_a_person}:
            left += await service.cancel(conversation) is not None
    finally:
        await redis.aclose()
    return left


async def ready(stack: StackConfig) -> bool:
    """True when the gateway's readyz says every part is ready."""
    async with httpx.AsyncClient(timeout=10) as http:
        with contextlib.suppress(httpx.HTTPError):
            return (await http.get(f"{stack.gateway_url}/readyz")).status_code == 200
    return False


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> float:
    """Seconds until ``check`` holds; NotInTime after ``timeout``."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout:
            raise NotInTime(f"{what} not within {timeout:.0f}s")
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def kill_under_load(stack: StackConfig, process: str, *, shoppers: int = 16,
                          back_within: float = 60.0, before: float = BEFORE_SECONDS,
                          after: float = AFTER_SECONDS) -> FaultRun:
    """SIGKILL ``process`` (a supervisord program name) while ``shoppers`` shoppers talk."""
    supervisor = stack.supervisor()
    await wait_until(lambda: ready(stack), READY_WITHIN_SECONDS, "the stack ready before")
    stop = asyncio.Event()
    async with agents_online(stack):
        load = asyncio.create_task(shop(stack.gateway_url, shoppers=shoppers, stop=stop,
                                        run=f"{process}-{uuid.uuid4().hex[:6]}"))
        try:
            await asyncio.sleep(before)
            victim = await asyncio.to_thread(supervisor.pid, process)
            os.kill(victim, signal.SIGKILL)

            async def restarted() -> bool:
                return await asyncio.to_thread(supervisor.pid, process) not in (0, victim)

            back = await wait_until(restarted, back_within, f"{process} restarted")
            await asyncio.sleep(after)
        finally:
            stop.set()
            tally = await load
        ready_in = await wait_until(lambda: ready(stack), READY_WITHIN_SECONDS,
                                    "every part ready again")
    kept = await check_kept(stack.redis_url, tally)
    await leave_queues(stack, tally)
    return FaultRun(process, tally, kept, back, ready_in)
