"""The outbound worker on a real Redis: at-least-once, de-duplicated, ordered, never lost.

The worker's edge is its ``deliver`` function; most tests record calls there, the last one
delivers through python-telegram-bot to the fake Bot API during a Telegram outage.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.channels.attachments import AttachmentDesk
from bot.channels.delivery import (
    DeliveryLedger,
    DeliveryState,
    OutboundWorker,
    announce,
    stop_task,
)
from bot.channels.errors import DeliveryFailed, DeliveryRejected
from bot.channels.telegram import TelegramChannel
from bot.gateway import Gateway
from bot.gateway.rasa_client import RasaClient
from handoff.service import HandoffService
from handoff.settings import HandoffSettings
from kefu.conversation import ConversationStore, Role, Turn
from kefu.keys import conv_outbound_key
from kefu.redis import async_client
from tests.helpers.fake_bot_api import FakeBotApi
from tests.helpers.fake_rasa import FakeRasa

pytestmark = pytest.mark.redis


class Recorder:
    """A deliver function that records turns and fails while told to."""

    def __init__(self) -> None:
        self.turns: list[tuple[str, str]] = []
        self.fail_with: Exception | None = None
        self.calls = 0

    async def __call__(self, conversation: str, turn: Turn) -> None:
        self.calls += 1
        if self.fail_with is not None:
            raise self.fail_with
        self.turns.append((conversation, turn.text))


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = async_client(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def conversations(redis: aioredis.Redis) -> ConversationStore:
    return ConversationStore(redis)


def worker(redis: aioredis.Redis, conversations: ConversationStore, deliver: Any,
           **options: Any) -> OutboundWorker:
    return OutboundWorker(redis, conversations, deliver, channel="telegram", block_ms=10,
                          **options)


async def pending(redis: aioredis.Redis) -> int:
    info: Any = await redis.xpending(conv_outbound_key(), "telegram")
    return int(info["pending"])


async def test_only_its_channel_is_delivered_and_everything_is_acknowledged(
        redis: aioredis.Redis, conversations: ConversationStore) -> None:
    recorder = Recorder()
    w = worker(redis, conversations, recorder)
    await conversations.append("web:alice", Role.AGENT, "给网页用户")
    await conversations.append("telegram:1", Role.AGENT, "给电报用户")
    await conversations.append("telegram:1", Role.BOT, "机器人回复不走推送")
    await conversations.append("telegram:1", Role.SYSTEM, "您前面还有 2 位")
    assert await w.run_once() is True
    assert recorder.turns == [("telegram:1", "给电报用户"), ("telegram:1", "您前面还有 2 位")]
    assert await pending(redis) == 0


async def test_failed_delivery_stays_pending_and_is_retried_in_order(
        redis: aioredis.Redis, conversations: ConversationStore) -> None:
    recorder = Recorder()
    w = worker(redis, conversations, recorder)
    await conversations.append("telegram:2", Role.AGENT, "第一条")
    await conversations.append("telegram:2", Role.AGENT, "第二条")
    recorder.fail_with = DeliveryFailed("Telegram is down", channel="telegram")
    assert await w.run_once() is False
    assert await w.run_once() is False
    assert recorder.turns == [] and await pending(redis) == 2
    recorder.fail_with = None
    assert await w.run_once() is True
    assert recorder.turns == [("telegram:2", "第一条"), ("telegram:2", "第二条")]
    assert await pending(redis) == 0 and w.failures == 2


async def test_a_turn_announced_twice_or_already_sent_goes_out_once(
        redis: aioredis.Redis, conversations: ConversationStore) -> None:
    recorder = Recorder()
    w = worker(redis, conversations, recorder)
    turn = await conversations.append("telegram:3", Role.AGENT, "只发一次")
    await announce(redis, "telegram:3", turn.id)
    sent_by_request = await conversations.append("telegram:3", Role.SYSTEM, "感谢您的评价！")
    await w.ledger.done(sent_by_request.id)  # the request path delivered it already
    assert await w.run_once() is True
    assert recorder.turns == [("telegram:3", "只发一次")]
    assert await pending(redis) == 0


async def test_a_refusal_is_dropped_not_retried(redis: aioredis.Redis,
                                                 conversations: ConversationStore) -> None:
    recorder = Recorder()
    recorder.fail_with = DeliveryRejected("Forbidden: bot was blocked by the user",
                                          channel="telegram")
    w = worker(redis, conversations, recorder)
    await conversations.append("telegram:4", Role.AGENT, "用户已屏蔽机器人")
    assert await w.run_once() is True
    assert await w.run_once() is True
    assert recorder.calls == 1 and w.dropped == 1 and await pending(redis) == 0


async def test_entries_of_a_dead_worker_are_taken_over(redis: aioredis.Redis,
                                                       conversations: ConversationStore) -> None:
    crashed = Recorder()
    crashed.fail_with = DeliveryFailed("process died mid-send", channel="telegram")
    first = worker(redis, conversations, crashed, consumer="gateway-a")
    await conversations.append("telegram:5", Role.AGENT, "接管后送达")
    assert await first.run_once() is False  # read, not acknowledged, then "gone"
    survivor = Recorder()
    second = worker(redis, conversations, survivor, consumer="gateway-b", claim_idle_ms=50)
    assert await second.run_once() is True
    assert survivor.turns == []  # not idle long enough yet
    await asyncio.sleep(0.1)
    assert await second.run_once() is True
    assert survivor.turns == [("telegram:5", "接管后送达")]
    assert await pending(redis) == 0


async def test_a_turn_being_sent_elsewhere_is_waited_for(redis: aioredis.Redis,
                                                          conversations: ConversationStore) -> None:
    recorder = Recorder()
    w = worker(redis, conversations, recorder)
    turn = await conversations.append("telegram:6", Role.SYSTEM, "正在别处发送")
    other = DeliveryLedger(redis, "telegram")
    assert await other.claim(turn.id) is DeliveryState.CLAIMED
    assert await w.run_once() is False and await pending(redis) == 1
    await other.release(turn.id)
    assert await w.run_once() is True
    assert recorder.turns == [("telegram:6", "正在别处发送")]


async def test_ledger_states(redis: aioredis.Redis) -> None:
    ledger = DeliveryLedger(redis, "telegram")
    assert await ledger.claim("1-0") is DeliveryState.CLAIMED
    assert await ledger.claim("1-0") is DeliveryState.BUSY
    await ledger.done("1-0")
    await ledger.release("1-0")  # too late to release: it was sent
    assert await ledger.claim("1-0") is DeliveryState.SENT


async def test_run_stops_promptly(redis: aioredis.Redis, conversations: ConversationStore) -> None:
    recorder = Recorder()
    w = OutboundWorker(redis, conversations, recorder, channel="telegram", block_ms=5000)
    task = asyncio.create_task(w.run())
    await conversations.append("telegram:7", Role.AGENT, "运行中送达")
    for _ in range(100):
        if recorder.turns:
            break
        await asyncio.sleep(0.02)
    assert recorder.turns == [("telegram:7", "运行中送达")]
    w.stopping = True
    await asyncio.wait_for(stop_task(task), 3)
    assert task.done()


async def test_telegram_outage_never_loses_an_agent_reply(
        redis: aioredis.Redis, conversations: ConversationStore) -> None:
    async with FakeBotApi() as api:
        handoff = HandoffService(redis, conversations, HandoffSettings(bcrypt_rounds=4))
        rasa = RasaClient("http://rasa", "token", transport=FakeRasa().transport())
        gateway = Gateway(rasa, conversations, handoff)
        channel = TelegramChannel(gateway, AttachmentDesk(gateway, conversations, handoff),
                                  conversations, redis, token=api.token, base_url=api.base_url,
                                  send_attempts=2, worker_options={"block_ms": 10})
        await channel.application.initialize()
        try:
            await conversations.append("telegram:808", Role.AGENT, "您的退款已处理",
                                       meta={"agent_name": "小王"})
            api.down = True
            assert await channel.worker.run_once() is False
            assert await channel.worker.run_once() is False
            assert api.sent(808) == [] and await pending(redis) == 1
            api.down = False
            assert await channel.worker.run_once() is True
            assert api.texts(808) == ["【小王】\n您的退款已处理"]
            assert await pending(redis) == 0
            assert len([c for c in api.attempts("sendMessage") if c.status == 502]) == 4
        finally:
            await channel.application.shutdown()
            await rasa.aclose()
