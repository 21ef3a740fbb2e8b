"""Quality control in a gateway process: the monitor wired to messages, its clock, its routes.

``bot.app`` builds one :class:`QualityRuntime`: every message the process keeps is checked (a
:class:`~kefu.conversation.ConversationStore` observer), every agent message is screened before
it is kept (the handoff service's ``screen`` hook), the time-limit clock runs while the app
does, the anger model is loaded with the knowledge encoders when this process has them, and
every message and ticket event this process makes is counted in the reports (``quality.reports``),
and old report days are rolled up hourly (``quality.rollup``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, date, datetime

import redis.asyncio as aioredis
from fastapi import APIRouter

from handoff.service import HandoffService
from kefu.http import Authenticate
from quality import api
from quality.anger import AngerModel, AngerScorer, shared_embedder
from quality.monitor import QualityMonitor
from quality.reports import Reports
from quality.rollup import roll_up
from quality.service import QualityService
from quality.settings import QualitySettings, get_settings
from quality.store import QualityStore

logger = logging.getLogger(__name__)


class QualityRuntime:
    """Owns the monitor, the supervisor service and the clock task of one process."""

    def __init__(self, redis: aioredis.Redis, handoff: HandoffService, *,
                 clock_seconds: float = 5.0, settings: QualitySettings | None = None) -> None:
        self._redis = redis
        self.settings = settings or get_settings()
        self.reports = Reports(redis, handoff.conversations, timezone=handoff.settings.timezone,
                               groups=list(handoff.settings.groups))
        self.monitor = QualityMonitor(QualityStore(redis), handoff, reports=self.reports)
        self.service = QualityService(self.monitor, handoff)
        self._clock_seconds = clock_seconds
        self._clock: asyncio.Task[None] | None = None
        self._rollups: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        if not self.settings.checks:  # KEFU_QA_CHECKS=false: nothing is checked or counted
            logger.warning("quality checks are off (KEFU_QA_CHECKS=false)")
            return
        handoff.conversations.observers.append(self.monitor.observe)
        handoff.conversations.analysis_observers.append(self.monitor.on_analysis)
        handoff.screen = self.monitor.screen
        handoff.events.observers.append(self.monitor.on_event)

    async def start(self, *, anger_model: bool) -> None:
        """Load the rules (and the anger model on the shared encoder), start the clock."""
        if not self.settings.checks:
            return
        if anger_model:
            try:
                embed = await asyncio.to_thread(shared_embedder)
                self.monitor.scorer = AngerScorer(AngerModel.load(), embed)
            except Exception:  # rules still work without the model
                logger.exception("the anger model could not be loaded; pattern rules only")
        await self.monitor.refresh_rules(force=True)
        self._stop.clear()
        self._clock = asyncio.create_task(self.monitor.run(self._clock_seconds, self._stop))
        if self.settings.rollup_after_days > 0:
            self._rollups = asyncio.create_task(self._roll_up_hourly())

    async def _roll_up_hourly(self) -> None:
        while not self._stop.is_set():
            today = date.fromisoformat(self.reports.day_of(datetime.now(UTC)))
            try:
                await roll_up(self._redis, self.reports, today, self.settings.rollup_after_days)
            except Exception:  # Redis hiccup: the next hour tries again
                logger.exception("rolling up old report days failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.settings.rollup_every_seconds)

    async def stop(self) -> None:
        """Stop the clock and finish the checks under way."""
        self._stop.set()
        for task in (self._clock, self._rollups):
            if task is not None:
                await asyncio.wait({task}, timeout=5)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.monitor.drain()

    def router(self, authenticate: Authenticate) -> APIRouter:
        """The supervisor API and event stream."""
        return api.create_router(self.service, self._redis, authenticate)
