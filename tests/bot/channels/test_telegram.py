"""The Telegram channel driven through python-telegram-bot against a local fake Bot API server.

Real: python-telegram-bot 22 (polling and webhook), the gateway, the handoff service, Redis.
Faked at their HTTP edges only: the Telegram Bot API (tests/helpers/fake_bot_api.py) and Rasa
(tests/helpers/fake_rasa.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from bot.app import create_app
from bot.channels.attachments import AttachmentDesk
from bot.channels.errors import PhotoNotFound
from bot.channels.telegram import SECRET_HEADER, TelegramChannel, shopper_text
from bot.gateway import Gateway
from bot.gateway.settings import BotSettings
from handoff.service import HandoffService
from kefu.accounts import Presence
from kefu.conversation import ConversationStore, Role
from kefu.http import install_error_handlers
from kefu.redis import async_client
from tests.helpers.fake_bot_api import PHOTO_BYTES, FakeBotApi, Shopper, _maybe_json
from tests.helpers.fake_rasa import (
    CLARIFY_TEXT,
    DEFAULT_TEXT,
    HANDOFF_TEXT,
    LONG_ENTRY_ID,
    RETURN_ANSWER,
    FakeRasa,
    gateway_on_fake_rasa,
)
from tests.helpers.live_server import serve

pytestmark = [
    pytest.mark.redis,
    # PTB 22 warns whenever RetryAfter.retry_after is read as an int (it becomes a timedelta).
    pytest.mark.filterwarnings(
        "ignore:.*attribute `retry_after` will be of type:telegram.warnings.PTBDeprecationWarning"),
]

WEBHOOK_URL = "https://kefu.example.com/telegram/webhook"
SECRET = "webhook-secret_123"
FAST_WORKER = {"block_ms": 100, "backoff_seconds": 0.05, "max_backoff_seconds": 0.2}


@dataclass
class Kefu:
    """The gateway side of one test: real services, fake Rasa, a Telegram channel."""

    api: FakeBotApi
    rasa: FakeRasa
    handoff: HandoffService
    conversations: ConversationStore
    gateway: Gateway
    channel: TelegramChannel

    async def agent(self, username: str = "xiaoli", name: str = "小李") -> Any:
        await self.handoff.agents.add(username, "password-123", ["presale"], display_name=name)
        return await self.handoff.agents.set_presence(username, Presence.ONLINE)


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as server:
        yield server


async def _kefu(redis_url: str, api: FakeBotApi, **channel_options: Any) -> AsyncIterator[Kefu]:
    redis = async_client(redis_url)
    conversations, handoff, rasa, gateway, client = gateway_on_fake_rasa(redis)
    channel = TelegramChannel(gateway, AttachmentDesk(gateway, conversations, handoff),
                              conversations, redis, token=api.token, base_url=api.base_url,
                              poll_timeout_seconds=1, worker_options=FAST_WORKER,
                              **channel_options)
    await channel.start()
    await asyncio.wait_for(channel.ready.wait(), 10)
    try:
        yield Kefu(api, rasa, handoff, conversations, gateway, channel)
    finally:
        await channel.stop()
        await client.aclose()
        await redis.aclose()


@pytest.fixture
async def kefu(redis_url: str, api: FakeBotApi) -> AsyncIterator[Kefu]:
    async for k in _kefu(redis_url, api):
        yield k


def _keyboard(sent: dict[str, Any]) -> list[dict[str, str]]:
    markup = sent.get("reply_markup") or {}
    return [button for row in markup.get("inline_keyboard", []) for button in row]


async def test_polling_conversation_answer_clarify_handoff_agent_reply_and_rating(kefu: Kefu) -> None:
    api, shopper = kefu.api, Shopper(4242)
    conv = "telegram:4242"

    api.push(api.text_update(shopper, "/start"))
    assert await api.wait_for_texts(4242, 1) == ["您好！我是智能客服小助手，请问有什么可以帮您？"]
    assert kefu.rasa.messages() == ["/greet"]

    # an answer with "was this helpful?" buttons; pressing one reaches Rasa as its payload
    api.push(api.text_update(shopper, "怎么退货？"))
    texts = await api.wait_for_texts(4242, 2)
    assert texts[-1] == RETURN_ANSWER
    answer = api.sent(4242)[-1]
    assert [b["callback_data"] for b in _keyboard(answer)] == ["/feedback_helpful",
                                                              "/feedback_not_helpful"]
    api.push(api.button_update(shopper, answer, "/feedback_helpful"))
    await api.wait_for_texts(4242, 3)
    assert kefu.rasa.messages()[-1] == "/feedback_helpful"
    assert api.attempts("answerCallbackQuery")
    assert api.attempts("editMessageReplyMarkup")  # the keyboard is removed after one press

    # clarification: a payload over 64 bytes travels as a short token and comes back whole
    api.push(api.text_update(shopper, "尺码怎么选"))
    await api.wait_for_texts(4242, 4)
    clarify = api.sent(4242)[-1]
    assert clarify["text"] == CLARIFY_TEXT
    datas = [b["callback_data"] for b in _keyboard(clarify)]
    assert all(len(d.encode()) <= 64 for d in datas)
    assert datas[0] == '/choose_option{"entry_id":"shoe-size"}' and datas[1].startswith("#")
    api.push(api.button_update(shopper, clarify, datas[1]))
    await api.wait_for_texts(4242, 5)
    assert kefu.rasa.messages()[-1] == f'/choose_option{{"entry_id":"{LONG_ENTRY_ID}"}}'

    # /human hands off; the queue notice arrives through the outbound worker
    agent = await kefu.agent()
    api.push(api.text_update(shopper, "/human"))
    texts = await api.wait_for_texts(4242, 7)
    assert kefu.rasa.messages()[-1] == "/request_human"
    assert HANDOFF_TEXT in texts
    queue_notice = next(m for m in api.sent(4242) if "转接人工客服" in m["text"]
                        and m["text"] != HANDOFF_TEXT)
    assert [b["callback_data"] for b in _keyboard(queue_notice)] == ["/back_to_bot"]
    ticket = await kefu.handoff.open_ticket(conv)
    assert ticket is not None

    # while a human owns the chat, text and photos go to the ticket, never to Rasa
    rasa_calls = len(kefu.rasa.received)
    before = len(await _shopper_turns(kefu, conv))
    api.push(api.text_update(shopper, "订单号 123456789012"))
    api.push(api.media_update(shopper, "photo", caption="鞋底开胶了"))
    shopper_turns = await _eventually(lambda: _shopper_turns(kefu, conv), before + 2)
    assert shopper_turns[-2].text == "订单号 123456789012"
    assert shopper_turns[-1].text == "[图片] file_id=photo-large-id 鞋底开胶了"
    assert shopper_turns[-1].meta["attachment"]["kind"] == "photo"
    assert len(kefu.rasa.received) == rasa_calls

    # the agent's reply is pushed to Telegram
    before = len(api.sent(4242))
    await kefu.handoff.claim(ticket.id, agent)
    await kefu.handoff.reply(ticket.id, agent, "您好，我是小李，已查到您的订单，马上为您补发。")
    texts = await api.wait_for_texts(4242, before + 2)
    assert "【小李】\n您好，我是小李，已查到您的订单，马上为您补发。" in texts
    assert any("小李 已接入" in t for t in texts)

    # resolving asks for a rating; pressing 5 ★ stores it and thanks the shopper
    await kefu.handoff.resolve(ticket.id, agent)
    await api.wait_for(lambda: any(_keyboard(m) and "打分" in m["text"] for m in api.sent(4242)))
    rating_request = next(m for m in api.sent(4242) if "打分" in m["text"])
    five = next(b for b in _keyboard(rating_request) if b["text"] == "5 ★")
    api.push(api.button_update(shopper, rating_request, five["callback_data"]))
    await api.wait_for(lambda: any("感谢您的评价" in t for t in api.texts(4242)))
    rated = await kefu.handoff.get(ticket.id)
    assert rated.rating == 5
    # every message reached the chat exactly once (the thanks came in the reply, not twice)
    texts = api.texts(4242)
    assert len([t for t in texts if "感谢您的评价" in t]) == 1
    assert len([t for t in texts if t.startswith("【小李】")]) == 1


async def _shopper_turns(kefu: Kefu, conv: str) -> list[Any]:
    return [t for t in await kefu.conversations.transcript(conv) if t.role is Role.SHOPPER]


async def _eventually(read: Any, count: int, timeout: float = 10.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while len(items := await read()) < count:
        assert time.monotonic() < deadline, f"only {len(items)} of {count}"
        await asyncio.sleep(0.02)
    return list(items)


async def test_webhook_checks_the_secret_on_every_update(redis_url: str, api: FakeBotApi) -> None:
    async for kefu in _kefu(redis_url, api, webhook_url=WEBHOOK_URL, webhook_secret=SECRET):
        assert api.webhook is not None
        assert api.webhook["url"] == WEBHOOK_URL and api.webhook["secret_token"] == SECRET
        app = FastAPI()
        app.include_router(kefu.channel.create_router())
        install_error_handlers(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kefu") as http:
            update = {"update_id": 1, **api.text_update(Shopper(7), "怎么退货")}
            missing = await http.post("/telegram/webhook", json=update)
            wrong = await http.post("/telegram/webhook", json=update,
                                    headers={SECRET_HEADER: "guess"})
            assert (missing.status_code, wrong.status_code) == (403, 403)
            await asyncio.sleep(0.2)
            assert kefu.rasa.received == [] and api.sent(7) == []

            ok = await http.post("/telegram/webhook", json=update, headers={SECRET_HEADER: SECRET})
            assert ok.status_code == 200
            assert await api.wait_for_texts(7, 1) == [RETURN_ANSWER]
            junk = await http.post("/telegram/webhook", content=b"not json",
                                   headers={SECRET_HEADER: SECRET})
            assert junk.status_code == 400
        assert not api.attempts("getUpdates")  # webhook mode never polls


async def test_media_in_bot_mode_tells_what_the_bot_reads_and_offers_a_person(kefu: Kefu) -> None:
    api = kefu.api
    chinese, english = Shopper(11), Shopper(12, first_name="Amy", language_code="en")
    api.push(api.media_update(chinese, "sticker"))
    notice = (await api.wait_for_texts(11, 1))[0]
    assert "只能看懂文字" in notice and "表情" in notice
    assert _keyboard(api.sent(11)[0]) == [{"text": "转人工客服", "callback_data": "/request_human"}]

    api.push(api.media_update(english, "voice"))
    assert "can only read text" in (await api.wait_for_texts(12, 1))[0]

    api.push(api.media_update(chinese, "photo", caption="这双鞋怎么退货"))
    texts = await api.wait_for_texts(11, 3)
    assert "图片" in texts[1] and texts[2] == RETURN_ANSWER  # the caption is still answered
    assert kefu.rasa.messages() == ["这双鞋怎么退货"]

    api.push(api.media_update(chinese, "document"))
    await api.wait_for_texts(11, 4)
    turns = await kefu.conversations.transcript("telegram:11")
    assert "[文件] file_id=document-file-id 发票.pdf application/pdf" in [t.text for t in turns]


async def test_a_photo_is_fetched_only_for_the_chat_that_sent_it(kefu: Kefu) -> None:
    api, owner = kefu.api, Shopper(21)
    api.push(api.media_update(owner, "photo"))
    await api.wait_for_texts(21, 1)
    assert await kefu.channel.photo("photo-large-id", "telegram:21") == (PHOTO_BYTES, "image/png")
    # another chat that types the file id into "/send_photo{...}" (or a ticket of it) gets nothing
    with pytest.raises(PhotoNotFound):
        await kefu.channel.photo("photo-large-id", "telegram:22")
    with pytest.raises(PhotoNotFound):  # a file id no chat sent
        await kefu.channel.photo("typed-by-hand", "telegram:21")
    assert len(api.attempts("getFile")) == 1  # the refused ones never reached Telegram


async def test_edited_message_is_answered_as_a_new_message(kefu: Kefu) -> None:
    api, shopper = kefu.api, Shopper(21)
    api.push(api.text_update(shopper, "你好呀"))
    await api.wait_for_texts(21, 1)
    api.push(api.text_update(shopper, "怎么退货", edited=True))
    assert (await api.wait_for_texts(21, 2))[-1] == RETURN_ANSWER
    assert kefu.rasa.messages() == ["你好呀", "怎么退货"]


async def test_unknown_commands_lose_their_slash() -> None:
    assert shopper_text("/start") == "/greet"
    assert shopper_text("/human@kefu_test_bot") == "/request_human"
    assert shopper_text("/退货 怎么办") == "退货 怎么办"
    assert shopper_text("普通问题 /x") == "普通问题 /x"


async def test_long_answer_is_split_below_4096_in_order(kefu: Kefu) -> None:
    api = kefu.api
    api.push(api.text_update(Shopper(31), "运费险怎么理赔"))
    await api.wait_for(lambda: len(api.sent(31)) >= 2)
    await asyncio.sleep(0.2)
    texts = api.texts(31)
    assert len(texts) >= 2 and all(len(t.encode("utf-16-le")) // 2 <= 4096 for t in texts)
    assert texts[0].startswith("第1条") and texts[-1].rstrip().endswith("运费险理赔说明。")
    assert "".join(texts).replace("\n", "") == "".join(
        t.text for t in await kefu.conversations.transcript("telegram:31")
        if t.role is Role.BOT).replace("\n", "")


async def test_flood_limit_is_waited_out_then_the_message_goes_once(kefu: Kefu) -> None:
    api = kefu.api
    api.flood("sendMessage", retry_after=1)
    started = time.monotonic()
    api.push(api.text_update(Shopper(41), "随便问问"))
    assert await api.wait_for_texts(41, 1) == [DEFAULT_TEXT]
    assert time.monotonic() - started >= 1.0
    assert [c.status for c in api.attempts("sendMessage")] == [429, 200]


async def test_reply_that_fails_during_an_outage_is_retried_by_the_worker(kefu: Kefu) -> None:
    api = kefu.api
    api.fail("sendMessage", status=502, times=5)  # every in-request attempt fails
    api.push(api.text_update(Shopper(51), "怎么退货"))
    assert await api.wait_for_texts(51, 1, timeout=15) == [RETURN_ANSWER]
    await asyncio.sleep(0.3)
    assert api.texts(51) == [RETURN_ANSWER]
    statuses = [c.status for c in api.attempts("sendMessage")]
    assert statuses.count(502) == 5 and statuses.count(200) == 1


async def test_message_from_a_group_chat_is_ignored(kefu: Kefu) -> None:
    api = kefu.api
    update = api.text_update(Shopper(61), "怎么退货")
    update["message"]["chat"] = {"id": -100, "type": "group", "title": "shoppers"}
    api.push(update)
    api.push(api.text_update(Shopper(62), "你好"))
    await api.wait_for_texts(62, 1)
    assert api.sent(-100) == [] and kefu.rasa.messages() == ["你好"]


def test_fake_server_records_reply_markup_as_json() -> None:
    # guards the fake itself: PTB sends reply_markup as a JSON string in a form field
    assert _maybe_json(json.dumps({"inline_keyboard": []})) == {"inline_keyboard": []}
    assert _maybe_json("[不是json") == "[不是json"


async def test_create_app_wires_the_webhook_and_starts_telegram(redis_url: str,
                                                                 api: FakeBotApi) -> None:
    settings = BotSettings(redis_url=redis_url, load_knowledge=False, telegram_token=api.token,
                           telegram_webhook_url=WEBHOOK_URL, telegram_webhook_secret=SECRET,
                           telegram_base_url=api.base_url)
    app = create_app(settings)
    async with serve(app) as server, httpx.AsyncClient(base_url=server.url) as http:
        await api.wait_for(lambda: api.webhook is not None)
        assert api.webhook is not None and api.webhook["secret_token"] == SECRET
        denied = await http.post("/telegram/webhook", json={"update_id": 1},
                                 headers={SECRET_HEADER: "nope"})
        widget = await http.get("/static/widget.js")
    assert denied.status_code == 403 and widget.status_code == 200


def test_webhook_mode_refuses_to_start_without_a_secret() -> None:

    with pytest.raises(ValidationError, match="WEBHOOK_SECRET"):
        BotSettings(telegram_token="1:a", telegram_webhook_url=WEBHOOK_URL)
    with pytest.raises(ValidationError, match="WEBHOOK_SECRET"):
        BotSettings(telegram_token="1:a", telegram_webhook_url=WEBHOOK_URL,
                    telegram_webhook_secret="has spaces")
    assert BotSettings(telegram_token="1:a").telegram_webhook_url is None  # polling mode
