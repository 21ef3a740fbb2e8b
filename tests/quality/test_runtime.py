"""A gateway's quality runtime: on, every kept message is checked and counted; off, none is."""

from __future__ import annotations

from datetime import date

import pytest
import redis.asyncio as aioredis

from handoff.service import HandoffService
from kefu.conversation import ConversationStore, Role
from quality.runtime import QualityRuntime
from quality.settings import QualitySettings
from tests.handoff.conftest import make_settings

pytestmark = pytest.mark.redis


@pytest.mark.parametrize("checks", [True, False])
async def test_kefu_qa_checks_turns_checking_and_counting_on_and_off(
        redis: aioredis.Redis, checks: bool) -> None:
    conversations = ConversationStore(redis)
    service = HandoffService(redis, conversations, make_settings())
    runtime = QualityRuntime(redis, service, settings=QualitySettings(checks=checks,
                                                                      rollup_after_days=0))
    await runtime.start(anger_model=False)
    try:
        turn = await conversations.append("web:angry", Role.SHOPPER, "我要投诉，打12315曝光你们")
        await runtime.monitor.drain()
    finally:
        await runtime.stop()
    alerts = await runtime.monitor.store.alerts()
    report = await runtime.reports.report(date.fromisoformat(runtime.reports.day_of(turn.at)))
    assert (len(alerts) > 0, report.conversations) == ((True, 1) if checks else (False, 0))
    assert (service.screen is not None) is checks
