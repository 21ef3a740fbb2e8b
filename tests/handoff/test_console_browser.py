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
from handoff.models import CannedAnswer, HandoffReason, TicketStatus
from handoff.service import HandoffService
from kefu.conversation import ConversationStore, Role
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
