"""The managers' template page (``/admin/templates/``) in Chromium: a wrong variable is refused
with a clear message, the preview fills a demo order, the saved wording is what the next
proactive message says, and reset brings the default back. Agents who are not managers read only.
"""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from kefu.accounts import AgentRole
from kefu.conversation import ConversationStore, Role
from kefu.redis import async_client
from orders import demo_data as demo
from orders.proactive import DEFAULTS, OrderEvent, ProactiveService
from tests.handoff.conftest import PASSWORD
from tests.orders.conftest import Console, demo_system

pytestmark = [pytest.mark.redis, pytest.mark.browser, pytest.mark.slow]

WORDING = "亲，订单 {order_id} 没能在 {ship_by} 前发出，仓库正在加急"


async def log_in(page: Page, url: str, username: str) -> None:
    await page.goto(f"{url}/admin/templates/")
    await page.get_by_test_id("login-username").fill(username)
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("app-view")).to_be_visible()


async def next_message(redis_url: str, conversation: str) -> str:
    """What the poller tells a conversation that has just verified the delayed demo order."""
    redis = async_client(redis_url)
    system = demo_system()
    try:
        conversations = ConversationStore(redis)
        service = ProactiveService(redis, conversations, system)
        await service.watch(demo.DELAYED, conversation)
        [sent] = await service.tick()
        [turn] = [t for t in await conversations.transcript(conversation)
                  if t.role is Role.SYSTEM]
        assert turn.text == sent.text
        return sent.text
    finally:
        await system.aclose()
        await redis.aclose()


async def test_a_manager_edits_previews_saves_and_resets(running: Console, page: Page,
                                                         redis_url: str) -> None:
    await running.service.agents.add("boss", PASSWORD, ["presale"], role=AgentRole.MANAGER,
                                     display_name="经理")
    page.set_default_timeout(10_000)
    await log_in(page, running.url, "boss")
    await expect(page.get_by_test_id("events").locator("button")).to_have_count(5)
    await page.get_by_test_id("event-ship_delayed").click()
    text = page.get_by_test_id("template-text")
    await expect(text).to_have_value(DEFAULTS[(OrderEvent.SHIP_DELAYED, "zh")])
    await expect(page.get_by_test_id("variables")).to_contain_text("{order_id}")

    await text.fill("订单 {order_id} 晚了 {tracking_no}")
    await page.get_by_test_id("save").click()
    await expect(page.get_by_test_id("template-problem")).to_contain_text(
        "unknown variables ['tracking_no']")

    await text.fill(WORDING)
    await page.get_by_test_id("preview").click()
    await expect(page.get_by_test_id("preview-order")).to_have_text(demo.DELAYED)
    await expect(page.get_by_test_id("preview-text")).to_contain_text(
        f"亲，订单 {demo.DELAYED} 没能在 ")
    await expect(page.get_by_test_id("preview-text")).to_contain_text("回复“退订”不再接收订单提醒。")
    await page.get_by_test_id("save").click()
    await expect(page.get_by_test_id("toast")).to_contain_text("已保存")
    await expect(page.get_by_test_id("state")).to_contain_text("customised")

    told = await next_message(redis_url, "web:amy")
    assert told.startswith(f"亲，订单 {demo.DELAYED} 没能在 ") and "仓库正在加急" in told

    await page.get_by_test_id("lang-en").check()  # the English one is untouched
    await expect(text).to_have_value(DEFAULTS[(OrderEvent.SHIP_DELAYED, "en")])
    await page.get_by_test_id("lang-zh").check()
    await expect(text).to_have_value(WORDING)
    await page.get_by_test_id("reset").click()
    await expect(text).to_have_value(DEFAULTS[(OrderEvent.SHIP_DELAYED, "zh")])
    await expect(page.get_by_test_id("state")).to_contain_text("default")
    assert (await next_message(redis_url, "web:bo")).startswith("【订单提醒】")


async def test_agents_see_the_templates_but_cannot_save(running: Console, page: Page) -> None:
    await running.service.agents.add("kim", PASSWORD, ["aftersale"], display_name="小金")
    page.set_default_timeout(10_000)
    await log_in(page, running.url, "kim")
    await expect(page.get_by_test_id("readonly-note")).to_be_visible()
    await expect(page.get_by_test_id("save")).to_be_hidden()
    await expect(page.get_by_test_id("reset")).to_be_hidden()
    await page.get_by_test_id("event-gift_shipped").click()
    await page.get_by_test_id("preview").click()
    await expect(page.get_by_test_id("preview-order")).to_have_text(demo.GIFT_SHIPPED)
