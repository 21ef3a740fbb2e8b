"""The agent console in real Chromium: log in, a ticket arrives live, claim, chat, resolve.

The console is served by uvicorn (in a thread) from a small FastAPI app that mounts the handoff
router over a real Redis; the test plays the shopper and the bot through its own HandoffService.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import Page, async_playwright, expect

from handoff.api import create_router
from handoff.models import CannedAnswer, HandoffReason, TicketStatus, shopper_label
from handoff.service import HandoffService
from kefu.conversation import BotAnalysis, Button, CandidateScore, ConversationStore, Role, utcnow
from kefu.http import install_error_handlers
from kefu.redis import async_client
from tests.handoff.conftest import PASSWORD, make_settings, seed_conversation
from tests.helpers.processes import free_port, wait_for_http

pytestmark = [pytest.mark.redis, pytest.mark.browser, pytest.mark.slow]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


async def canned(_text: str) -> list[CannedAnswer]:
    return [CannedAnswer(entry_id="refund-time", question="退款多久到账", answer="退款将在 1-3 个工作日内原路退回。",
                         score=0.88)]


@pytest.fixture
def console_url(redis_url: str) -> Iterator[str]:
    redis = async_client(redis_url)
    service = HandoffService(redis, ConversationStore(redis), make_settings(heartbeat_seconds=1.0))

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await redis.aclose()  # in the server's own event loop

    app = FastAPI(lifespan=lifespan)
    app.include_router(create_router(service, knowledge_search=canned))
    install_error_handlers(app)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=1, loop="asyncio"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_http(f"http://127.0.0.1:{port}/console/", timeout=15)
    yield f"http://127.0.0.1:{port}/console/"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = await browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900})
        yield await context.new_page()
        await browser.close()


async def test_agent_console_end_to_end(console_url: str, page: Page, service: HandoffService
                                        ) -> None:
    await service.agents.add("li", PASSWORD, ["aftersale"], display_name="小李")
    page.set_default_timeout(10_000)
    await page.goto(console_url)

    await page.get_by_test_id("login-username").fill("li")
    await page.get_by_test_id("login-password").fill("wrong password")
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("login-error")).not_to_be_empty()
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("live-status")).to_have_attribute("data-live", "on")
    await expect(page.get_by_test_id("queue-item")).to_have_count(0)

    # the bot hands off: the ticket shows up without a reload, with a badge
    await seed_conversation(service, "web:zhang", shopper="<img src=x onerror=alert(1)>退款呢")
    ticket = await service.request_handoff("web:zhang", reason=HandoffReason.LOW_CONFIDENCE,
                                           channel="web")
    item = page.get_by_test_id("queue-item")
    await expect(item).to_have_count(1)
    await expect(item).to_have_attribute("data-ticket-id", ticket.id)
    await expect(page.get_by_test_id("queue-badge")).to_have_text("1")

    await item.click()
    panel = page.get_by_test_id("context-panel")
    await expect(panel.get_by_test_id("context-order")).to_have_text("E20240611001")
    await expect(panel.get_by_test_id("analysis-confidence")).to_contain_text("41%")
    transcript = page.get_by_test_id("transcript")
    await expect(transcript.get_by_test_id("turn-text").nth(2)).to_have_text(
        "<img src=x onerror=alert(1)>退款呢")
    assert await transcript.locator("img").count() == 0  # rendered as text, never as HTML

    await page.get_by_test_id("claim-button").click()
    await expect(page.get_by_test_id("conversation-status")).to_have_attribute("data-status",
                                                                               "claimed")
    await expect(page.get_by_test_id("my-ticket")).to_have_count(1)

    # the shopper writes: it appears live, as text
    await service.add_shopper_message("web:zhang", "<b>还在吗？</b>")
    await expect(transcript.get_by_test_id("turn-text").last).to_have_text("<b>还在吗？</b>")
    assert await transcript.locator("b").count() == 0

    # one click inserts the knowledge answer, then reply
    await panel.get_by_test_id("insert-answer").first.click()
    await expect(page.get_by_test_id("reply-input")).to_have_value("退款将在 1-3 个工作日内原路退回。")
    await page.get_by_test_id("reply-send").click()
    await expect(transcript.locator("[data-role=agent]")).to_have_count(1)
    sent = await service.conversations.sent_to_shopper("web:zhang")
    assert [t.text for t in sent if t.role is Role.AGENT] == ["退款将在 1-3 个工作日内原路退回。"]

    await expect(panel.get_by_test_id("sla-timer")).to_contain_text("First reply")
    await page.wait_for_timeout(1500)  # a heartbeat or two renew the lease
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "console.png"), full_page=True)

    await page.get_by_test_id("resolve-note").fill("已告知退款时效")
    await page.get_by_test_id("resolve-button").click()
    await expect(page.get_by_test_id("conversation-status")).to_have_attribute("data-status",
                                                                               "returned")
    closed = await service.get(ticket.id)
    assert closed.status is TicketStatus.RETURNED and closed.resolution_note == "已告知退款时效"
    assert await service.open_ticket("web:zhang") is None
    await expect(page.get_by_test_id("my-ticket")).to_have_count(0)
    await asyncio.sleep(0)


# --- the conversation as agents read it ------------------------------------------------------

CLARIFY_BUTTONS = [
    Button(title="尺码偏大偏小怎么选", payload='/choose_option{"entry_id":"shoe-fit"}'),
    Button(title="鞋码对照表", payload='/choose_option{"entry_id":"shoe-size-chart"}'),
    Button(title="都不是", payload="/none_of_these"),
    Button(title="转人工", payload="/request_human"),
]


TOAST_LOG = """() => {
    window.__toasts = [];
    kefu.toast("");  // what was shown before does not count
    let last = "";
    new MutationObserver(() => {
        const box = document.getElementById("toast");
        const now = box && !box.hidden ? box.textContent : "";
        if (now && now !== last) window.__toasts.push(now);
        last = now;
    }).observe(document.body, {subtree: true, childList: true, characterData: true,
                               attributes: true, attributeFilter: ["hidden"]});
}"""


async def log_in(page: Page, url: str, username: str) -> None:
    page.set_default_timeout(10_000)
    await page.goto(url)
    await page.get_by_test_id("login-username").fill(username)
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("live-status")).to_have_attribute("data-live", "on")


async def clicked_through(service: HandoffService, conv: str) -> None:
    """A shopper who clarified twice, clicking the buttons, as the gateway records it."""
    store = service.conversations
    await store.set_profile(conv, channel="web", language="zh")
    for role, text, buttons in [
        (Role.SHOPPER, "鞋子大了半码怎么办", []),
        (Role.BOT, "您是想问下面哪一个？", CLARIFY_BUTTONS),
        (Role.SHOPPER, '/choose_option{"entry_id":"shoe-fit"}', []),
        (Role.BOT, "偏大半码的话建议换小一码。", [Button(title="有帮助 👍", payload="/feedback_helpful"),
                                             Button(title="没帮助 👎", payload="/feedback_not_helpful")]),
        (Role.SHOPPER, "/feedback_not_helpful", []),
        (Role.SHOPPER, "鞋子怎么洗", []),
        (Role.BOT, "您是想问下面哪一个？", [Button(title="洗鞋方法", payload='/choose_option{"entry_id":"care-shoes"}'),
                                     *CLARIFY_BUTTONS[2:]]),
        (Role.SHOPPER, "/none_of_these", []),
        (Role.SHOPPER, "/request_human", []),
    ]:
        await store.append(conv, role, text, buttons=buttons)
    await store.record_analysis(conv, BotAnalysis(
        at=utcnow(), text="鞋子怎么洗", intent="ask_question", decision="clarify",
        candidates=[CandidateScore(entry_id="care-shoes", question="洗鞋方法", score=0.6)]))
    await store.record_analysis(conv, BotAnalysis(at=utcnow(), text="/request_human",
                                                  intent="request_human", decision="handoff"))


async def test_the_transcript_reads_like_a_person_wrote_it(console_url: str, page: Page,
                                                           service: HandoffService) -> None:
    await service.agents.add("ai", PASSWORD, ["presale"], display_name="小艾")
    await log_in(page, console_url, "ai")
    await clicked_through(service, "web:w4f55411d2eda9c1")
    await service.request_handoff("web:w4f55411d2eda9c1", reason=HandoffReason.REPEATED_FAILURE,
                                  channel="web", group="presale", detail="2 次澄清未解决")

    item = page.get_by_test_id("queue-item")
    label = shopper_label("web:w4f55411d2eda9c1", "web", None)
    await expect(item.get_by_test_id("ticket-shopper")).to_have_text(label)
    assert label.startswith("网页访客 #")
    await expect(item.get_by_test_id("ticket-summary")).to_have_text("鞋子怎么洗 · 2 次澄清未解决")
    await expect(item).to_contain_text("网页 Web · 首次 ")
    await item.click()
    await expect(page.get_by_test_id("conversation-title")).to_contain_text(label + " · 网页 Web · 首次")
    texts = page.get_by_test_id("transcript").get_by_test_id("turn-text")
    await expect(texts).to_have_count(10)  # nine turns and the queue message
    said = await page.locator("[data-role=shopper] [data-testid=turn-text]").all_text_contents()
    assert said == ["鞋子大了半码怎么办", "点了：尺码偏大偏小怎么选", "点了：没帮助 👎", "鞋子怎么洗",
                    "点了：都不是", "点了：转人工"]
    everything = " ".join(await texts.all_text_contents())
    assert "/choose_option" not in everything and "/none_of_these" not in everything
    assert "/request_human" not in everything and "/feedback" not in everything


async def test_a_transfer_keeps_its_place_and_tells_the_receiver_who_sent_it(
        console_url: str, service: HandoffService) -> None:
    await service.agents.add("ai", PASSWORD, ["presale", "logistics"], display_name="小艾")
    await service.agents.add("wu", PASSWORD, ["logistics"], display_name="小物")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        sender = await (await browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900})).new_page()
        receiver = await (await browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900})).new_page()
        await log_in(sender, console_url, "ai")
        await log_in(receiver, console_url, "wu")

        await seed_conversation(service, "web:moved", shopper="包裹三天没动了", category="presale",
                                language="zh")
        moved = await service.request_handoff("web:moved", reason=HandoffReason.EXPLICIT_REQUEST,
                                              channel="web", group="presale")
        await seed_conversation(service, "web:later", shopper="快递到哪了", category="logistics")
        later = await service.request_handoff("web:later", reason=HandoffReason.LOW_CONFIDENCE,
                                              channel="web", group="logistics")
        queue = receiver.locator("[data-testid=queue-group][data-group=logistics] [data-testid=queue-item]")
        await expect(queue).to_have_count(1)

        await sender.locator(f"[data-testid=queue-item][data-ticket-id='{moved.id}']").click()
        await sender.get_by_test_id("claim-button").click()
        await expect(sender.get_by_test_id("conversation-status")).to_have_attribute("data-status", "claimed")
        for console in (sender, receiver):  # every toast either console shows from now on
            await console.evaluate(TOAST_LOG)
        await sender.get_by_test_id("transfer-target").select_option("group:logistics")
        await sender.get_by_test_id("transfer-note").fill("查一下物流单号")
        await sender.get_by_test_id("transfer-button").click()

        # the receiver: the ticket ahead of the later one (its original time), and who sent it
        await expect(queue).to_have_count(2)
        assert await queue.evaluate_all("items => items.map(i => i.dataset.ticketId)") == \
            [moved.id, later.id]
        await expect(receiver.get_by_test_id("toast")).to_have_text("转接 from 小艾: 查一下物流单号")
        assert not any("新会话" in t for t in await receiver.evaluate("window.__toasts"))
        # the sender serves logistics too, but gets no "new chat" alert for their own transfer
        await sender.wait_for_timeout(1500)
        assert await sender.evaluate("window.__toasts") == ["已转接 Transferred"]
        # the shopper is told, without a new estimate
        told = await service.conversations.sent_to_shopper("web:moved")
        assert told[-1].text == "已为您转接物流客服，请稍候。"
        await receiver.locator(f"[data-testid=queue-item][data-ticket-id='{moved.id}']").click()
        await expect(receiver.get_by_test_id("context-transfer")).to_contain_text("小艾: 售前 Pre-sales → 物流 Logistics · 查一下物流单号")
        await browser.close()


async def test_history_finds_a_resolved_chat_and_reopens_it(console_url: str, page: Page,
                                                            service: HandoffService) -> None:
    agent = await service.agents.add("ai", PASSWORD, ["aftersale"], display_name="小艾")
    await seed_conversation(service, "web:old", shopper="退款还没到账", language="zh")
    await service.conversations.set_slot("web:old", "order_number", "2026112012345")
    ticket = await service.request_handoff("web:old", reason=HandoffReason.EXPLICIT_REQUEST,
                                           channel="web")
    await service.claim(ticket.id, agent)
    await service.reply(ticket.id, agent, "已为您加急处理，原路退回")
    await service.resolve(ticket.id, agent, note="加急退款")
    await service.conversations.append("web:old", Role.SHOPPER, "/rate 4")  # as the gateway does
    await service.rate("web:old", 4)
    await seed_conversation(service, "web:other", shopper="发票怎么开", language="zh")
    other = await service.request_handoff("web:other", reason=HandoffReason.EXPLICIT_REQUEST,
                                          channel="web")
    await service.claim(other.id, agent)
    await service.resolve(other.id, agent, note="已开票")

    await log_in(page, console_url, "ai")
    await page.get_by_test_id("history-button").click()
    items = page.get_by_test_id("history-item")
    await expect(items).to_have_count(2)
    await page.get_by_test_id("history-q").fill("2026-1120-1234-5")  # the order number as typed
    await page.get_by_test_id("history-search").click()
    await expect(items).to_have_count(1)
    await expect(items.get_by_test_id("history-note")).to_have_text("处理结果 加急退款")
    await expect(items.get_by_test_id("history-rating")).to_have_text("★★★★")
    await page.get_by_test_id("history-q").fill("加急处理")  # words the agent said
    await page.get_by_test_id("history-search").click()
    await expect(items).to_have_count(1)
    await page.get_by_test_id("history-q").fill("")
    await page.get_by_test_id("history-from").fill("2020-01-01")
    await page.get_by_test_id("history-to").fill("2020-01-02")
    await page.get_by_test_id("history-search").click()
    await expect(items).to_have_count(0)
    await page.get_by_test_id("history-from").fill("")
    await page.get_by_test_id("history-to").fill("")
    await page.get_by_test_id("history-q").fill("小明")
    await page.get_by_test_id("history-search").click()
    await expect(items).to_have_count(2)

    # read-only: the transcript, the rating and the note; no reply box, no reopen yet
    await items.filter(has_text="加急退款").click()
    await expect(page.get_by_test_id("history-stars")).to_have_text("★★★★☆")
    await expect(page.get_by_test_id("history-resolution")).to_have_text("加急退款")
    await expect(page.get_by_test_id("history-transcript")).to_contain_text("已为您加急处理，原路退回")
    await expect(page.get_by_test_id("history-transcript")).to_contain_text("评分：4 ★")
    await expect(page.get_by_test_id("history-view").locator("textarea")).to_have_count(0)
    await expect(page.get_by_test_id("reopen-button")).to_be_hidden()

    # the shopper writes again the same day: the chat can be reopened, and the agent has it
    await service.conversations.append("web:old", Role.SHOPPER, "还是没收到退款")
    await items.filter(has_text="加急退款").click()
    await expect(page.get_by_test_id("history-again")).not_to_be_empty()
    await page.get_by_test_id("reopen-button").click()
    await expect(page.get_by_test_id("workspace")).to_be_visible()
    await expect(page.get_by_test_id("conversation-status")).to_have_attribute("data-status", "claimed")
    await expect(page.get_by_test_id("my-ticket")).to_have_count(1)
    reopened = await service.open_ticket("web:old")
    assert reopened is not None and reopened.reopened_from == ticket.id and reopened.agent == "ai"
