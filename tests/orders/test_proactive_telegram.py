"""A proactive order message reaches Telegram: the gateway's Telegram channel (python-telegram-bot
against the local fake Bot API) pushes the system turn the poller wrote; after 退订 nothing more.

Real: python-telegram-bot, the outbound worker, Redis, the proactive poller, the HTTP adapter and
the demo order service. Faked at their HTTP edges only: the Bot API and Rasa.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.channels.attachments import AttachmentDesk
from bot.channels.telegram import TelegramChannel
from bot.gateway import Gateway
from bot.gateway.rasa_client import RasaClient
from handoff.service import HandoffService
from handoff.settings import HandoffSettings
from kefu.conversation import ConversationStore
from kefu.redis import async_client
from orders import demo_data as demo
from orders.proactive import ProactiveService
from tests.helpers.demo_orders import over_http, seeded
from tests.helpers.fake_bot_api import FakeBotApi
from tests.helpers.fake_rasa import FakeRasa

pytestmark = [
    pytest.mark.redis,
    pytest.mark.filterwarnings(
        "ignore:.*attribute `retry_after` will be of type:telegram.warnings.PTBDeprecationWarning"),
]

CHAT = 4242
CONV = f"telegram:{CHAT}"
FAST_WORKER = {"block_ms": 100, "backoff_seconds": 0.05, "max_backoff_seconds": 0.2}


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as server:
        yield server


async def test_delayed_order_message_in_telegram_and_unsubscribe(redis_url: str,
                                                                 api: FakeBotApi) -> None:
    redis = async_client(redis_url)
    conversations = ConversationStore(redis)
    handoff = HandoffService(redis, conversations, HandoffSettings(bcrypt_rounds=4))
    rasa = RasaClient("http://rasa", "token", transport=FakeRasa(handoff).transport())
    gateway = Gateway(rasa, conversations, handoff)
    channel = TelegramChannel(gateway, AttachmentDesk(gateway, conversations, handoff),
                              conversations, redis, token=api.token, base_url=api.base_url,
                              poll_timeout_seconds=1, worker_options=FAST_WORKER)
    store = seeded()
    system = over_http(store)
    service = ProactiveService(redis, conversations, system)
    await channel.start()
    try:
        await asyncio.wait_for(channel.ready.wait(), 10)
        await conversations.set_profile(CONV, language="zh", channel="telegram")
        await service.watch(demo.DELAYED, CONV)  # the shopper verified it earlier
        [sent] = await service.tick()
        [text] = await api.wait_for_texts(CHAT, 1)
        assert text == sent.text and text.startswith(f"【订单提醒】您的订单 {demo.DELAYED}")
        # 退订 (what action_proactive_subscription does), then the order's parcel gets stuck
        await service.opt_out(CONV)
        await service.watch(demo.STUCK, CONV)
        assert await service.tick() == []
        await asyncio.sleep(0.5)  # the worker would have pushed by now
        assert api.texts(CHAT) == [text]
        # the moment the promise lapses on a paid order is an event too
        paid = store.get(demo.PAID)
        assert paid is not None
        store.replace_all([*(o for o in demo.demo_orders(datetime.now(UTC))
                             if o.order_id != demo.PAID),
                           paid.model_copy(update={"ship_by": datetime.now(UTC)
                                                   - timedelta(minutes=1)})])
        await service.opt_in(CONV)
        await service.watch(demo.PAID, CONV)
        [again] = await service.tick()
        assert again.order_id == demo.PAID
        assert (await api.wait_for_texts(CHAT, 2))[-1] == again.text
    finally:
        await channel.stop()
        await system.aclose()
        await rasa.aclose()
        await redis.aclose()
