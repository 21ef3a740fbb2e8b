"""The web chat WebSocket on a real uvicorn server, with a real gateway, handoff and Redis.

Rasa is faked at its HTTP edge; the client is the ``websockets`` library speaking the widget's
protocol, so replay, live push and de-duplication are checked frame by frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bot.channels.web import WIDGET_DIR, WebChat
from bot.gateway.api import ShopperLimits
from bot.gateway.service import SILENT_TEXT
from handoff.models import HandoffReason
from handoff.service import HandoffService
from kefu.accounts import Presence
from kefu.conversation import ConversationStore, Role
from kefu.limits import Rate
from kefu.redis import async_client
from kefu.welcome import DEFAULT_WELCOME, Welcome, WelcomeStore
from tests.helpers.fake_rasa import (
    DEFAULT_TEXT,
    RETURN_ANSWER,
    FakeRasa,
    gateway_on_fake_rasa,
)
from tests.helpers.live_server import LoopServer

pytestmark = pytest.mark.redis


@dataclass
class Site:
    server: LoopServer
    rasa: FakeRasa
    conversations: ConversationStore
    handoff: HandoffService
    redis: Any
    tokens: dict[str, str] = field(default_factory=dict)  # sender → its conversation token

    def ws_url(self, sender: str) -> str:
        return f"ws://127.0.0.1:{self.server.port}/ws/chat?sender={sender}"


@pytest.fixture
async def site(redis_url: str) -> AsyncIterator[Site]:
    redis = async_client(redis_url)
    conversations, handoff, rasa, gateway, client = gateway_on_fake_rasa(redis)
    web = WebChat(gateway, conversations, redis, history_limit=5, block_ms=500,
                  origins=["https://shop.example.com"],
                  limits=ShopperLimits(per_sender=Rate(60, 5), per_address=Rate(6000, 1000)))
    app = FastAPI()
    app.include_router(web.create_router())
    app.mount("/static", StaticFiles(directory=WIDGET_DIR), name="static")
    server = LoopServer(app)
    await server.start()
    try:
        yield Site(server, rasa, conversations, handoff, redis)
    finally:
        await web.close_all()
        await server.stop()
        await client.aclose()
        await redis.aclose()


class Widget:
    """The widget's side of the protocol (it keeps each sender's token, as the widget does)."""

    def __init__(self, ws: ClientConnection, site: Site, sender: str) -> None:
        self.ws = ws
        self.site = site
        self.sender = sender
        self.frames: list[dict[str, Any]] = []

    async def hello(self, after: str | None = None) -> list[dict[str, Any]]:
        await self.ws.send(json.dumps({"type": "hello", "after": after, "lang": "zh",
                                       "token": self.site.tokens.get(self.sender)}))
        frame = await self.until(lambda f: f["type"] == "history")
        for f in self.frames:
            if f["type"] == "token":
                self.site.tokens[self.sender] = f["token"]
        return list(frame["messages"])

    async def send(self, cid: str, text: str) -> dict[str, Any]:
        await self.ws.send(json.dumps({"type": "message", "cid": cid, "text": text}))
        return await self.until(lambda f: f["type"] in ("ack", "error") and f.get("cid") == cid)

    async def until(self, predicate: Any, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads(await self.ws.recv())
                self.frames.append(frame)
                if predicate(frame):
                    return frame

    def messages(self) -> list[dict[str, Any]]:
        return [f["message"] for f in self.frames if f["type"] == "message"]


async def widget(site: Site, sender: str) -> Widget:
    return Widget(await connect(site.ws_url(sender)), site, sender)


async def start(site: Site, sender: str) -> None:
    """The sender's first visit: the page says hello and gets the conversation's token."""
    w = await widget(site, sender)
    await w.hello()
    await w.ws.close()


async def test_message_gets_echo_answer_and_ack_in_order(site: Site) -> None:
    w = await widget(site, "alice")
    assert await w.hello() == []
    ack = await w.send("c1", "怎么退货？")
    assert ack["mode"] == "bot" and ack["duplicate"] is False
    kinds = [f["type"] for f in w.frames]
    assert kinds[:3] == ["token", "history", "typing"] and kinds[-2:] == ["typing", "ack"]
    if not any(m["role"] == "bot" for m in w.messages()):  # pushed before or after the ack
        await w.until(lambda f: f["type"] == "message" and f["message"]["role"] == "bot")
    echo, answer = w.messages()
    assert (echo["role"], echo["text"], echo["cid"], echo["id"]) == ("shopper", "怎么退货？", "c1",
                                                                     ack["id"])
    assert answer["role"] == "bot" and answer["text"] == RETURN_ANSWER
    assert [b["payload"] for b in answer["buttons"]] == ["/feedback_helpful",
                                                        "/feedback_not_helpful"]
    await w.ws.close()


async def test_a_resent_message_is_not_processed_twice(site: Site) -> None:
    first = await widget(site, "bob")
    await first.hello()
    ack = await first.send("c-resend", "在吗")
    await first.ws.close()  # the ack was "lost"; the widget resends after reconnecting
    second = await widget(site, "bob")
    history = await second.hello(after=None)
    again = await second.send("c-resend", "在吗")
    assert again["duplicate"] is True and again["id"] == ack["id"]
    assert site.rasa.messages() == ["在吗"]
    assert [m["text"] for m in history] == ["在吗", DEFAULT_TEXT]
    shopper = [t for t in await site.conversations.transcript("web:bob") if t.role is Role.SHOPPER]
    assert len(shopper) == 1
    await second.ws.close()


async def test_reconnect_replays_what_was_missed_then_pushes_live(site: Site) -> None:
    w = await widget(site, "carol")
    await w.hello()
    await w.send("c1", "你好")
    last_seen = w.messages()[-1]["id"]
    await w.ws.close()

    missed = await site.conversations.append("web:carol", Role.AGENT, "您好，我是客服小李",
                                             meta={"agent_name": "小李"})
    w = await widget(site, "carol")
    history = await w.hello(after=last_seen)
    assert [(m["id"], m["text"], m.get("agent")) for m in history] == [
        (missed.id, "您好，我是客服小李", "小李")]

    live = await site.conversations.append("web:carol", Role.SYSTEM, "本次服务已结束，请打分",
                                           buttons=[])
    frame = await w.until(lambda f: f["type"] == "message")
    assert frame["message"]["id"] == live.id and frame["message"]["role"] == "system"
    await w.ws.close()


async def test_fresh_page_gets_the_latest_history_only(site: Site) -> None:
    await start(site, "dan")
    for i in range(8):
        await site.conversations.append("web:dan", Role.BOT, f"消息{i}")
    w = await widget(site, "dan")
    history = await w.hello(after=None)
    assert [m["text"] for m in history] == [f"消息{i}" for i in range(3, 8)]
    bogus = await widget(site, "dan")
    assert len(await bogus.hello(after="<script>")) == 5  # a bad cursor is ignored
    huge = await widget(site, "dan")
    assert len(await huge.hello(after="99999999999999999999-0")) == 5  # so is one past 2**64
    await w.ws.close()
    await bogus.ws.close()
    await huge.ws.close()


async def test_handoff_mode_and_rejected_messages(site: Site) -> None:
    await start(site, "erin")
    await site.handoff.request_handoff("web:erin", reason=HandoffReason.EXPLICIT_REQUEST,
                                       channel="web")
    w = await widget(site, "erin")
    history = await w.hello()
    assert history and history[-1]["role"] == "system"  # the queue notice
    ack = await w.send("c1", "我的订单号是 1234567890")
    assert ack["mode"] == "handoff" and ack["id"]
    assert site.rasa.messages() == []

    error = await w.send("c2", "长" * 2001)
    assert (error["type"], error["code"]) == ("error", "invalid")
    retry = await w.send("c2", "短一点")  # a rejected client id may be used again
    assert retry["type"] == "ack" and retry["duplicate"] is False
    await w.ws.close()


async def test_rasa_down_keeps_the_message_and_still_answers(site: Site) -> None:
    site.rasa.down = True
    w = await widget(site, "frank")
    await w.hello()
    ack = await w.send("c1", "在吗")
    assert ack["type"] == "ack" and ack["mode"] == "bot"
    if not any(m["role"] == "bot" for m in w.messages()):
        await w.until(lambda f: f["type"] == "message" and f["message"]["role"] == "bot")
    turns = await site.conversations.transcript("web:frank")
    assert [(t.role, t.text) for t in turns] == [(Role.SHOPPER, "在吗"), (Role.BOT, SILENT_TEXT)]
    assert turns[0].id == ack["id"]
    await w.ws.close()


async def test_bad_sender_is_refused(site: Site) -> None:
    with pytest.raises(InvalidStatus) as info:
        await connect(site.ws_url("bad%20sender%3Cx%3E"))
    assert info.value.response.status_code == 403


async def test_widget_and_demo_store_are_served(site: Site) -> None:
    async with httpx.AsyncClient(base_url=site.server.url) as http:
        script = await http.get("/static/widget.js")
        demo = await http.get("/static/demo.html")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "innerHTML" not in script.text
    assert demo.status_code == 200 and '<script src="/static/widget.js"' in demo.text


async def test_junk_frames_are_ignored(site: Site) -> None:
    w = await widget(site, "gina")
    await w.hello()
    await w.ws.send(b"\x00\x01binary")
    await w.ws.send("not json")
    await w.ws.send(json.dumps({"type": "message", "text": "no client id"}))
    error = await w.until(lambda f: f["type"] == "error")
    assert error["code"] == "invalid" and error["cid"] is None
    ack = await w.send("c1", "你好")
    assert ack["type"] == "ack" and ack["id"]
    await w.ws.close()


async def test_the_widget_reads_the_welcome_managers_set(site: Site) -> None:
    base = f"http://127.0.0.1:{site.server.port}"
    async with httpx.AsyncClient(base_url=base) as http:
        default = (await http.get("/api/v1/widget/welcome", params={"lang": "en"})).json()
        assert default["greeting"].startswith("Hello") and 3 <= len(default["questions"]) <= 4
        store = WelcomeStore(site.redis)
        await store.set(DEFAULT_WELCOME.model_copy(update={
            "zh": Welcome(greeting="欢迎来到小鹿！", questions=["双12什么时候开始？"])}))
        assert (await http.get("/api/v1/widget/welcome")).json() == {
            "greeting": "欢迎来到小鹿！", "questions": ["双12什么时候开始？"]}
        assert (await http.get("/api/v1/widget/welcome", params={"lang": "fr"})).status_code == 422


async def test_system_messages_carry_the_handoff_status(site: Site) -> None:
    await site.handoff.agents.add("li", "password-123", ["presale"], display_name="小艾")
    await site.handoff.agents.set_presence("li", Presence.ONLINE)
    w = await widget(site, "carol")
    await w.hello()
    await site.handoff.request_handoff("web:carol", reason=HandoffReason.EXPLICIT_REQUEST,
                                       channel="web", group="presale")
    waiting = await w.until(lambda f: f["type"] == "message" and "status" in f["message"])
    assert waiting["message"]["status"] == {"state": "waiting", "ahead": 0}
    ticket = await site.handoff.open_ticket("web:carol")
    assert ticket is not None
    await site.handoff.claim(ticket.id, await site.handoff.agents.get("li"))
    serving = await w.until(lambda f: f["type"] == "message"
                            and f["message"].get("status", {}).get("state") == "serving")
    assert serving["message"]["status"]["agent"] == "小艾"


# --- issue #11: who may open a conversation, from which page, how fast --------------------------


async def closed_with(ws: ClientConnection) -> tuple[int | None, list[dict[str, Any]]]:
    frames: list[dict[str, Any]] = []
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(5):
            while True:
                frames.append(json.loads(await ws.recv()))
    return ws.close_code, frames


async def test_a_new_sender_gets_a_token_and_must_show_it_on_every_later_visit(
        site: Site) -> None:
    first = await widget(site, "hana")
    await first.hello()
    token = site.tokens["hana"]
    assert first.frames[0] == {"type": "token", "token": token}  # before the history
    await first.send("c1", "你好")
    await first.ws.close()

    anonymous = await connect(site.ws_url("hana"))
    await anonymous.send(json.dumps({"type": "hello", "after": None}))
    code, frames = await closed_with(anonymous)
    assert code == 4401 and frames[-1]["code"] == "unauthorized"
    assert not any(f["type"] in ("history", "message") for f in frames)  # nothing replayed

    wrong = await connect(site.ws_url("hana"))
    await wrong.send(json.dumps({"type": "hello", "token": "not-hana-s-token"}))
    code, frames = await closed_with(wrong)
    assert code == 4403 and not any(f["type"] == "history" for f in frames)

    other = await widget(site, "ivan")  # a shopper with a token of their own
    await other.hello()
    thief = await connect(site.ws_url("hana"))
    await thief.send(json.dumps({"type": "hello", "token": site.tokens["ivan"]}))
    assert (await closed_with(thief))[0] == 4403
    await other.ws.close()

    again = await widget(site, "hana")
    assert next(m["text"] for m in await again.hello()) == "你好"
    await again.ws.close()


async def test_a_conversation_nobody_holds_a_token_for_cannot_be_taken(site: Site) -> None:
    await site.conversations.append("web:old", Role.SHOPPER, "我的手机号是 13812345678")
    ws = await connect(site.ws_url("old"))
    await ws.send(json.dumps({"type": "hello", "after": None}))
    code, frames = await closed_with(ws)
    assert code == 4403 and not any(f["type"] == "history" for f in frames)


async def test_only_kefu_s_own_pages_and_the_configured_stores_may_open_the_chat(
        site: Site) -> None:
    with pytest.raises(InvalidStatus) as info:
        await connect(site.ws_url("judy"), origin="https://evil.example.net")
    assert info.value.response.status_code == 403
    for origin in ("https://shop.example.com", f"http://127.0.0.1:{site.server.port}"):
        ws = await connect(site.ws_url("judy"), origin=origin)
        await ws.close()


async def test_a_flooding_sender_is_slowed_and_keeps_nothing_extra(site: Site) -> None:
    w = await widget(site, "kim")
    await w.hello()
    answers = [await w.send(f"c{i}", f"第{i}条") for i in range(8)]
    refused = [a for a in answers if a["type"] == "error"]
    assert [a["type"] for a in answers[:5]] == ["ack"] * 5  # the burst
    assert refused and all(a["code"] == "rate_limited" and a["retry_after"] >= 1 for a in refused)
    shopper = [t for t in await site.conversations.transcript("web:kim") if t.role is Role.SHOPPER]
    assert len(shopper) == len(answers) - len(refused)
    other = await widget(site, "lena")  # another shopper is not slowed by kim
    await other.hello()
    assert (await other.send("c1", "你好"))["type"] == "ack"
    await w.ws.close()
    await other.ws.close()
