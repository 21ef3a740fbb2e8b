"""The web chat widget in a real Chromium: chat, quick replies, live agent messages, forced
reconnects (server restart and network loss), reload with history, both UI languages, photos.

The gateway side is real (WebChat, Gateway, HandoffService, Redis) behind a real uvicorn;
Rasa is faked at its HTTP edge.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from playwright.sync_api import Browser, FilePayload, Page, expect, sync_playwright

from bot.channels import photos
from bot.channels.attachments import AttachmentDesk
from bot.channels.web import WIDGET_DIR, WebChat
from bot.gateway import Gateway
from bot.gateway.api import ShopperLimits
from bot.gateway.identity import ShopperAccess
from bot.gateway.rasa_client import RasaClient
from handoff.models import HandoffReason
from handoff.service import HandoffService
from handoff.settings import HandoffSettings
from kefu.accounts import Presence
from kefu.conversation import ConversationStore, Role, Turn
from kefu.http import RequestLimits, install_error_handlers
from kefu.limits import Rate, RateLimiter
from kefu.redis import async_client
from kefu.welcome import Welcome, WelcomeSettings, WelcomeStore
from tests.helpers.fake_bot_api import PHOTO_BYTES
from tests.helpers.fake_rasa import DEFAULT_TEXT, RETURN_ANSWER, RETURN_ANSWER_EN, FakeRasa
from tests.helpers.live_server import ThreadServer

pytestmark = [pytest.mark.browser, pytest.mark.redis]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PHOTO_CAP = 100 * 1024  # the server's photo cap in these tests: "0.1 MB" on the page
PHOTOS_A_DAY = 3  # a conversation's photos per UTC day in these tests


def build_app(redis_url: str, rasa: FakeRasa) -> FastAPI:
    """The shopper-facing part of the kefu app, as create_app wires it."""
    redis = async_client(redis_url)
    conversations = ConversationStore(redis)
    handoff = HandoffService(redis, conversations, HandoffSettings(bcrypt_rounds=4))
    client = RasaClient("http://rasa", "token", transport=rasa.transport())
    gateway = Gateway(client, conversations, handoff)
    access = ShopperAccess(redis)
    web = WebChat(gateway, conversations, redis, access=access, block_ms=1000)
    unlimited = ShopperLimits(per_sender=Rate(0, 0), per_address=Rate(0, 0))
    photo_routes = photos.create_router(
        photos.PhotoStore(redis, max_bytes=PHOTO_CAP, ttl_seconds=3600,
                          daily_limit=PHOTOS_A_DAY),
        AttachmentDesk(gateway, conversations, handoff), conversations, access=access,
        limiter=RateLimiter(redis), limits=unlimited)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await web.close_all()
        await redis.aclose()  # connections belong to this loop; a restart reconnects

    app = FastAPI(lifespan=lifespan)
    app.include_router(web.create_router())
    app.include_router(photo_routes)
    app.mount("/static", StaticFiles(directory=WIDGET_DIR), name="static")
    install_error_handlers(app)
    app.add_middleware(RequestLimits, limits=[(photos.PREFIX, PHOTO_CAP)])
    return app


@dataclass
class Store:
    server: ThreadServer
    rasa: FakeRasa
    redis_url: str

    @property
    def demo(self) -> str:
        return f"{self.server.url}/static/demo.html"

    def append(self, conversation: str, role: Role, text: str, **meta: Any) -> Turn:
        """An agent/system message, written like the handoff service writes it."""
        async def write() -> Turn:
            redis = async_client(self.redis_url)
            try:
                return await ConversationStore(redis).append(conversation, role, text, meta=meta)
            finally:
                await redis.aclose()

        return _run(write())

    def set_profile(self, conversation: str, **fields: str) -> None:
        async def write() -> None:
            redis = async_client(self.redis_url)
            try:
                await ConversationStore(redis).set_profile(conversation, **fields)
            finally:
                await redis.aclose()

        _run(write())

    def transcript(self, conversation: str) -> list[Turn]:
        async def read() -> list[Turn]:
            redis = async_client(self.redis_url)
            try:
                return await ConversationStore(redis).transcript(conversation)
            finally:
                await redis.aclose()

        return _run(read())


def _run(coroutine: Any) -> Any:
    # Playwright's sync API owns this thread's event loop: run store calls in another thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} missing: apt-get install -y chromium fonts-wqy-microhei")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def store(redis_url: str) -> Iterator[Store]:
    rasa = FakeRasa()
    server = ThreadServer(build_app(redis_url, rasa))
    server.start()
    try:
        yield Store(server, rasa, redis_url)
    finally:
        server.close()


@contextlib.contextmanager
def shop_page(browser: Browser, store: Store, locale: str) -> Iterator[Page]:
    context = browser.new_context(locale=locale)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(store.demo)
    try:
        yield page
    finally:
        context.close()
    assert errors == []


def messages(page: Page) -> list[tuple[str, str]]:
    """(role, text) of every rendered message, in order (the local greeting aside)."""
    rows: list[tuple[str, str]] = page.evaluate("""() => {
        const root = document.querySelector('#kefu-chat').shadowRoot;
        return [...root.querySelectorAll('.msg:not(.greeting)')].map(
            m => [m.dataset.role || 'notice', m.querySelector('.text').textContent]);
    }""")
    return [tuple(r) for r in rows]  # type: ignore[misc]


def rendered_ids(page: Page) -> list[str]:
    ids: list[str] = page.evaluate("""() => [...document.querySelector('#kefu-chat').shadowRoot
        .querySelectorAll('.msg[data-id]')].map(m => m.dataset.id)""")
    return ids


def say(page: Page, text: str) -> None:
    page.locator("textarea").fill(text)
    page.locator("textarea").press("Enter")


def connected(page: Page) -> None:
    expect(page.locator(".status")).to_have_attribute("data-state", "online", timeout=15_000)


def test_chat_reconnects_and_reload_in_chinese(browser: Browser, store: Store) -> None:
    with shop_page(browser, store, "zh-CN") as page:
        page.locator(".launcher").click()
        expect(page.locator(".title")).to_have_text("在线客服")
        expect(page.locator("textarea")).to_have_attribute("placeholder", "请输入您的问题…")
        connected(page)
        sender = page.evaluate("window.KefuChat.sender()")
        conv = f"web:{sender}"

        say(page, "怎么退货？")
        expect(page.locator(".msg.bot .text").last).to_have_text(RETURN_ANSWER)
        page.locator(".buttons button", has_text="有帮助").click()
        expect(page.locator(".msg.bot .text").last).to_have_text("感谢您的反馈！")
        assert messages(page)[-2] == ("shopper", "有帮助 👍")  # the title, not the payload
        assert store.rasa.messages() == ["怎么退货？", "/feedback_helpful"]

        # an agent's message is pushed live
        store.append(conv, Role.AGENT, "您好，我是客服小李。", agent_name="小李")
        expect(page.locator(".msg.agent .text")).to_have_text("您好，我是客服小李。")
        expect(page.locator(".msg.agent .who")).to_have_text("小李")

        # forced reconnect 1: the server restarts; meanwhile an agent writes and the shopper types
        store.server.stop()
        expect(page.locator(".status")).to_have_attribute("data-state", "offline")
        missed = store.append(conv, Role.AGENT, "补发单号 SF1234567890", agent_name="小李")
        say(page, "好的谢谢")
        expect(page.locator(".msg.pending")).to_have_count(1)
        store.server.start()
        connected(page)
        expect(page.locator(".msg.pending")).to_have_count(0, timeout=10_000)
        expect(page.locator(f'.msg[data-id="{missed.id}"]')).to_have_count(1)
        expect(page.locator(".msg.bot .text").last).to_have_text(DEFAULT_TEXT)

        # forced reconnect 2: the network drops and comes back
        page.context.set_offline(True)
        expect(page.locator(".status")).to_have_attribute("data-state", "offline")
        store.append(conv, Role.SYSTEM, "本次服务已结束，请为本次服务打分（1–5 分）：")
        say(page, "再见")
        page.context.set_offline(False)
        connected(page)
        expect(page.locator(".msg.system .text").last).to_have_text(
            "本次服务已结束，请为本次服务打分（1–5 分）：")
        expect(page.locator(".msg.pending")).to_have_count(0, timeout=10_000)

        # nothing lost, nothing twice: the page shows exactly the transcript
        page.wait_for_timeout(300)
        turns = store.transcript(conv)
        shopper_texts = [t.text for t in turns if t.role is Role.SHOPPER]
        assert shopper_texts == ["怎么退货？", "/feedback_helpful", "好的谢谢", "再见"]
        assert rendered_ids(page) == [t.id for t in turns]
        before = messages(page)

        # reload: same sender, history restored from the cache plus the server's replay
        page.reload()
        page.locator(".launcher").click()
        connected(page)
        assert page.evaluate("window.KefuChat.sender()") == sender
        page.wait_for_timeout(300)
        assert messages(page) == before
        assert rendered_ids(page) == [t.id for t in turns]

        # a fresh browser profile with the same sender gets the history from the server
        page.evaluate(f"localStorage.removeItem('kefu:history:{sender}')")
        page.reload()
        connected(page)
        page.wait_for_timeout(300)
        assert rendered_ids(page) == [t.id for t in turns]


def test_english_ui_switches_to_chinese_and_text_is_never_html(browser: Browser,
                                                               store: Store) -> None:
    with shop_page(browser, store, "en-US") as page:
        page.locator(".launcher").click()
        expect(page.locator(".title")).to_have_text("Customer service")
        expect(page.locator("form button[type=submit]")).to_have_text("Send")
        expect(page.locator("button.attach")).to_have_attribute("aria-label", "Send a photo")
        connected(page)
        say(page, "How do I return shoes?")
        expect(page.locator(".msg.bot .text").last).to_have_text(RETURN_ANSWER_EN)
        expect(page.locator(".msg.bot .who").last).to_have_text("Assistant")

        say(page, "show me html")
        markup = '<img src=x onerror="window.__kefu_xss=1"><b>粗体</b> & <script>x()</script>'
        expect(page.locator(".msg.bot .text").last).to_have_text(markup)
        assert page.evaluate("window.__kefu_xss === undefined")
        assert page.evaluate("""() => document.querySelector('#kefu-chat').shadowRoot
            .querySelectorAll('.log img, .log b, .log script').length""") == 0

        page.locator("header .lang").click()
        expect(page.locator(".title")).to_have_text("在线客服")
        expect(page.locator(".msg.bot .who").last).to_have_text("智能助手")
        page.reload()
        expect(page.locator(".launcher .label")).to_contain_text("联系客服")  # choice remembered


def test_chinese_quick_reply_to_the_latest_message_only(browser: Browser, store: Store) -> None:
    with shop_page(browser, store, "zh-CN") as page:
        page.locator(".launcher").click()
        connected(page)
        say(page, "尺码怎么选")
        expect(page.locator(".msg.bot:not(.greeting) .buttons button")).to_have_count(2)
        page.locator(".buttons button", has_text="鞋码怎么选").click()
        expect(page.locator(".msg.bot .text").last).to_have_text("鞋码偏小半码，建议选大一码。")
        assert store.rasa.messages()[-1] == '/choose_option{"entry_id":"shoe-size"}'
        visible = page.locator(".msg:not(.stale) .buttons button")
        expect(visible).to_have_count(2)  # only the newest answer's feedback buttons
        expect(visible.first).to_have_text("有帮助 👍")
        assert RETURN_ANSWER not in [t for _r, t in messages(page)]


# --- greeting and the truthful status banner -------------------------------------------------


def handoff_call(redis_url: str, act: Any) -> Any:
    """Run ``act(service)`` against the store's Redis, as another process (the console) would."""
    async def go() -> Any:
        redis = async_client(redis_url)
        try:
            return await act(HandoffService(redis, ConversationStore(redis),
                                            HandoffSettings(bcrypt_rounds=4)))
        finally:
            await redis.aclose()

    return _run(go())


def banner(page: Page) -> Any:
    return page.locator(".banner")


def test_the_widget_greets_in_the_shoppers_language_with_the_managers_questions(
        browser: Browser, store: Store) -> None:
    async def set_welcome() -> None:
        redis = async_client(store.redis_url)
        try:
            await WelcomeStore(redis).set(WelcomeSettings(
                zh=Welcome(greeting="欢迎来到小鹿鞋服！", questions=["怎么退货？", "尺码怎么选", "运费险怎么赔"]),
                en=Welcome(greeting="Welcome to Deer Shoes!", questions=["How do I return shoes?"])))
        finally:
            await redis.aclose()

    _run(set_welcome())
    with shop_page(browser, store, "en-US") as page:
        expect(page.locator(".greeting")).to_have_count(0)  # not before it is opened
        page.locator(".launcher").click()
        greeting = page.locator(".msg.greeting")
        expect(greeting.locator(".text")).to_have_text("Welcome to Deer Shoes!")
        expect(greeting.locator(".buttons button")).to_have_text(["How do I return shoes?"])
        page.locator("header .lang").click()  # the shopper switches to Chinese
        expect(greeting.locator(".text")).to_have_text("欢迎来到小鹿鞋服！")
        expect(greeting.locator(".buttons button")).to_have_text(["怎么退货？", "尺码怎么选", "运费险怎么赔"])
        connected(page)
        greeting.locator(".buttons button", has_text="怎么退货？").click()
        expect(page.locator(".msg.bot:not(.greeting) .text").last).to_have_text(RETURN_ANSWER)
        assert store.rasa.messages() == ["怎么退货？"]
        expect(page.locator(".msg.greeting")).to_have_count(1)  # it stays at the top
        # a returning shopper sees their chat, not a greeting
        page.reload()
        page.locator(".launcher").click()
        connected(page)
        expect(page.locator(".msg.greeting")).to_have_count(0)


def test_the_banner_tells_where_the_handoff_stands(browser: Browser, store: Store) -> None:
    with shop_page(browser, store, "zh-CN") as page:
        page.locator(".launcher").click()
        connected(page)
        conv = f"web:{page.evaluate('window.KefuChat.sender()')}"
        expect(banner(page)).to_be_hidden()

        # nobody online: the message waits for an agent
        handoff_call(store.redis_url, lambda s: s.request_handoff(
            conv, reason=HandoffReason.EXPLICIT_REQUEST, channel="web", group="presale"))
        expect(banner(page)).to_have_text("已留言，客服上线后回复")
        expect(banner(page)).to_have_attribute("data-state", "message_left")

        async def serve_and_close(service: HandoffService) -> None:
            agent = await service.agents.add("ai", "password-123", ["presale"], display_name="小艾")
            await service.agents.set_presence("ai", Presence.ONLINE)
            ticket = await service.open_ticket(conv)
            assert ticket is not None
            await service.claim(ticket.id, agent)

        handoff_call(store.redis_url, serve_and_close)
        expect(banner(page)).to_have_text("客服 小艾 为您服务")

        async def resolve(service: HandoffService) -> None:
            ticket = await service.open_ticket(conv)
            assert ticket is not None
            await service.resolve(ticket.id, await service.agents.get("ai"), note="ok")

        handoff_call(store.redis_url, resolve)
        expect(banner(page)).to_be_hidden()
        expect(banner(page)).to_have_attribute("data-state", "none")

        # someone is ahead in the queue; then they are taken and the shopper is next
        async def queue_behind(service: HandoffService) -> str:
            first = await service.request_handoff("web:ahead", reason=HandoffReason.EXPLICIT_REQUEST,
                                                  channel="web", group="presale")
            await service.request_handoff(conv, reason=HandoffReason.EXPLICIT_REQUEST,
                                          channel="web", group="presale")
            return first.id

        ahead = handoff_call(store.redis_url, queue_behind)
        expect(banner(page)).to_have_text("排队中，前面还有 1 位")
        async def take_the_one_ahead(service: HandoffService) -> None:
            await service.claim(ahead, await service.agents.get("ai"))

        handoff_call(store.redis_url, take_the_one_ahead)
        expect(banner(page)).to_have_text("排队中，您是下一位")
        # the page reloads: the banner comes back from the history
        page.reload()
        page.locator(".launcher").click()
        connected(page)
        expect(banner(page)).to_have_text("排队中，您是下一位")
        page.locator(".buttons button", has_text="返回智能助手").last.click()
        expect(banner(page)).to_be_hidden()



def attach(page: Page, name: str, mime: str, content: bytes) -> None:
    """The shopper picks a file with the 📷 button."""
    payload: FilePayload = {"name": name, "mimeType": mime, "buffer": content}
    page.locator("input[type=file]").set_input_files(files=[payload])


def thumbnail_shown(page: Page, photo: Any) -> None:
    img = photo.locator("img.thumb")
    expect(img).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth === 1", arg=img.element_handle())


def test_a_photo_is_sent_shown_as_a_thumbnail_and_refused_files_are_said(
        browser: Browser, store: Store) -> None:
    with shop_page(browser, store, "zh-CN") as page:
        page.locator(".launcher").click()
        connected(page)
        attach_button = page.locator("button.attach")
        expect(attach_button).to_be_visible()
        expect(attach_button).to_have_attribute("aria-label", "发送图片")
        conv = f"web:{page.evaluate('window.KefuChat.sender()')}"
        refused = page.locator(".msg.notice.photo-error .text")

        # refused on the page, before anything is sent: a GIF, a picture over the server's cap
        attach(page, "cat.gif", "image/gif", b"GIF89a" + b"\x00" * 40)
        expect(refused.last).to_have_text("只能发送 JPG、PNG 或 WebP 格式的图片。")
        attach(page, "big.png", "image/png", PHOTO_BYTES + b"\x00" * PHOTO_CAP)
        expect(refused.last).to_have_text("图片不能超过 0.1 MB，请换一张小一点的。")
        # named .png but not a picture: the server reads the bytes and refuses (415)
        attach(page, "fake.png", "image/png", b"GIF89a" + b"\x00" * 40)
        expect(refused).to_have_count(3)
        expect(refused.last).to_have_text("只能发送 JPG、PNG 或 WebP 格式的图片。")
        expect(page.locator(".msg.shopper.failed")).to_have_count(1)
        assert store.transcript(conv) == []

        # outside a photo step: kept, shown as a thumbnail, and the bot says what happens
        attach(page, "strap.png", "image/png", PHOTO_BYTES)
        photo = page.locator(".msg.shopper.photo[data-id]")
        expect(photo).to_have_count(1)
        thumbnail_shown(page, photo)
        expect(page.locator(".msg.bot .text").last).to_contain_text("无法查看图片")
        expect(page.locator(".msg.photo-upload")).to_have_count(1)  # only the refused one
        photo_id = photo.get_attribute("data-photo-id")
        turns = store.transcript(conv)
        assert [t.text for t in turns if t.role is Role.SHOPPER] == [f"[图片] file_id={photo_id}"]
        assert store.rasa.messages() == []

        # while a flow asks for a photo it is the answer, sent on to Rasa
        store.set_profile(conv, awaiting="photo")
        attach(page, "strap2.png", "image/png", PHOTO_BYTES)
        expect(page.locator(".msg.shopper.photo[data-id]")).to_have_count(2)
        second = page.locator(".msg.shopper.photo[data-id]").last.get_attribute("data-photo-id")
        expect(page.locator(".msg.bot .text").last).to_have_text(DEFAULT_TEXT)
        assert store.rasa.messages() == [f'/send_photo{{"photo": "photo:web:{second}"}}']
        expect(page.locator(".msg.photo-upload")).to_have_count(1)
        expect(page.locator(".msg").last).not_to_have_class(re.compile(r"\bstale\b"))

        # after a reload the thumbnails come from the server, with the conversation's token
        page.reload()
        page.locator(".launcher").click()
        connected(page)
        for shown in page.locator(".msg.shopper.photo[data-id]").all():
            thumbnail_shown(page, shown)

        # the day's photos used up: 429, said in the shopper's language, nothing kept
        attach(page, "third.png", "image/png", PHOTO_BYTES)
        expect(page.locator(".msg.shopper.photo[data-id]")).to_have_count(PHOTOS_A_DAY)
        kept = len(store.transcript(conv))
        attach(page, "fourth.png", "image/png", PHOTO_BYTES)
        expect(refused.last).to_have_text(
            "今天发送的图片已达上限，请明天再发，或用文字描述您的问题。")
        expect(page.locator(".msg.shopper.photo[data-id]")).to_have_count(PHOTOS_A_DAY)
        assert len(store.transcript(conv)) == kept
