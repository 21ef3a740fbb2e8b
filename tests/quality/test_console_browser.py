"""Quality control in real Chromium: a supervisor's console alerts within a second of an angry
shopper and of a banned agent phrase; the block keeps the agent's message from the shopper; the
supervisor opens the chat from the alert, whispers to the agent and takes the chat over.

The whole gateway app is served (``bot.app.create_app``, without the model or Rasa: a shopper
who writes while a ticket is open goes to the ticket, never to Rasa); the shopper writes through
the shopper API, as the widget does.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from bot.app import create_app
from bot.gateway.settings import BotSettings
from handoff.service import HandoffService
from kefu.accounts import AgentRole
from tests.handoff.conftest import PASSWORD, AgentFactory
from tests.helpers.live_server import serve_in_thread
from tests.helpers.processes import free_port

pytestmark = [pytest.mark.redis, pytest.mark.browser, pytest.mark.slow]

GROUPS = ["presale", "aftersale", "logistics"]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--autoplay-policy=no-user-gesture-required"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@pytest.fixture
def gateway_url(redis_url: str) -> Iterator[str]:
    settings = BotSettings(redis_url=redis_url, load_knowledge=False,
                           rasa_url=f"http://127.0.0.1:{free_port()}")
    with serve_in_thread(create_app(settings)) as server:
        yield server.url


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        found = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield found
        await found.close()


async def console(browser: Browser, url: str, username: str) -> Page:
    context = await browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(10_000)
    await page.goto(f"{url}/console/")
    await page.get_by_test_id("login-username").fill(username)
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("live-status")).to_have_attribute("data-live", "on")
    await expect(page.locator("body")).to_have_attribute("data-qa-live", "on")
    return page


async def shopper_sees(http: httpx.AsyncClient, sender: str) -> list[str]:
    response = await http.get(f"/api/v1/conversations/{sender}/messages")
    assert response.status_code == 200, response.text
    return [m["text"] for m in response.json()["messages"]]


async def test_supervisor_alerts_block_whisper_take_over(
        gateway_url: str, browser: Browser, service: HandoffService,
        make_agent: AgentFactory) -> None:
    li = await make_agent("li", GROUPS, online=False)
    await make_agent("boss", GROUPS, role=AgentRole.MANAGER, online=False)
    boss_page = await console(browser, gateway_url, "boss")
    li_page = await console(browser, gateway_url, "li")
    http = httpx.AsyncClient(base_url=gateway_url, timeout=10)
    first = await http.post("/api/v1/messages", json={  # Rasa is away: the gateway hands off
        "sender": "wang", "channel": "web", "text": "转人工"})
    assert first.status_code == 200, first.text
    http.headers["Authorization"] = f"Bearer {first.json()['conversation_token']}"
    ticket = await service.open_ticket("web:wang")
    assert ticket is not None
    await service.claim(ticket.id, li)
    await li_page.get_by_test_id("my-ticket").click()
    await expect(li_page.get_by_test_id("conversation-status")).to_have_attribute(
        "data-status", "claimed")
    alerts = boss_page.get_by_test_id("qa-alert")
    await expect(alerts).to_have_count(0)

    try:
        # 1. an angry shopper: the supervisor hears it within a second
        start = time.monotonic()
        sent = await http.post("/api/v1/messages", json={
            "sender": "wang", "channel": "web", "text": "再不退款我就去12315投诉你们"})
        assert sent.status_code == 200, sent.text
        await expect(boss_page.get_by_test_id("qa-badge")).to_have_text("1", timeout=1000)
        assert time.monotonic() - start < 1.0
        await expect(alerts.first).to_have_attribute("data-rule", "complaint-threat")
        assert int(await boss_page.locator("body").get_attribute("data-qa-beeps") or 0) >= 1

        # 2. the agent types a banned phrase: blocked, told why, supervisor alerted
        await expect(li_page.get_by_test_id("transcript").get_by_test_id("turn-text").last
                     ).to_have_text("再不退款我就去12315投诉你们")
        await li_page.get_by_test_id("reply-input").fill("加我微信 li_kefu，私下给您退")
        start = time.monotonic()
        await li_page.get_by_test_id("reply-send").click()
        await expect(boss_page.get_by_test_id("qa-badge")).to_have_text("2", timeout=1000)
        assert time.monotonic() - start < 1.0
        await expect(alerts.first).to_have_attribute("data-action", "block")
        await expect(li_page.get_by_test_id("blocked-warning")).to_contain_text("站外联系方式")
        await expect(li_page.get_by_test_id("reply-input")).to_have_value("加我微信 li_kefu，私下给您退")
        assert not any("微信" in t for t in await shopper_sees(http, "wang"))

        # 3. the supervisor opens the chat from the alert and whispers to the agent
        await boss_page.get_by_test_id("qa-alerts-button").click()
        await alerts.first.click()
        await expect(boss_page.get_by_test_id("conversation-title")).to_contain_text("网页访客")
        await expect(boss_page.get_by_test_id("transcript").get_by_test_id("turn-text").last
                     ).to_have_text("再不退款我就去12315投诉你们")
        await boss_page.get_by_test_id("whisper-input").fill("先道歉，再告诉他退款进度")
        await boss_page.get_by_test_id("whisper-send").click()
        await expect(li_page.get_by_test_id("whisper-text")).to_have_text("先道歉，再告诉他退款进度")
        assert not any("先道歉" in t for t in await shopper_sees(http, "wang"))

        # 4. ... and takes it over: the agent's console lets go, the supervisor answers
        await boss_page.get_by_test_id("takeover-button").click()
        await expect(boss_page.get_by_test_id("conversation-status")).to_contain_text("boss")
        await expect(li_page.get_by_test_id("my-ticket")).to_have_count(0)
        await boss_page.get_by_test_id("reply-input").fill("您好，我是主管，马上为您加急退款")
        await boss_page.get_by_test_id("reply-send").click()
        await expect(boss_page.get_by_test_id("transcript").locator("[data-role=agent]")
                     ).to_have_count(1)
        assert (await shopper_sees(http, "wang"))[-1] == "您好，我是主管，马上为您加急退款"
    finally:
        await http.aclose()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await boss_page.screenshot(path=str(SCREENSHOTS / "supervisor.png"), full_page=True)
    assert (await service.get(ticket.id)).agent == "boss"
