"""The store reaches out first, in the web chat widget (Chromium on the demo page), end to end.

A shopper verifies a paid order in the widget; the demo order system then records that it missed
its promised shipping date; the stack's order-events poller tells the shopper in the widget, and
the message stays in the conversation's transcript. After "退订" a delayed order the shopper
verifies brings no message. And the store's signed webhook: the refund the store reports
completed is told in the widget at once, a repeated event once, a forged one never.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.async_api import Browser, Locator, Page, async_playwright, expect

from kefu.conversation import ConversationStore, Role
from kefu.redis import async_client
from kefu.stack import StackConfig
from orders import demo_data as demo
from orders.demo import DemoOrders
from orders.proactive_webhook import PATH, sign
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, ORDER_WEBHOOK_SECRET

pytestmark = [pytest.mark.rasa, pytest.mark.redis, pytest.mark.model, pytest.mark.browser,
              pytest.mark.slow]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


async def open_widget(stack: StackConfig, browser: Browser) -> tuple[Page, Locator, Locator]:
    """The demo page's chat, opened: the page, the bot's messages and the system turns."""
    page = await (await browser.new_context(locale="zh-CN")).new_page()
    page.set_default_timeout(20_000)
    await page.goto(f"{stack.gateway_url}/static/demo.html")
    await page.locator(".launcher").click()
    return page, page.locator(".msg.bot:not(.greeting)"), page.locator(".msg.system")


async def say(page: Page, text: str) -> None:
    await page.locator("textarea").fill(text)
    await page.locator("textarea").press("Enter")


def miss_the_promise(stack: StackConfig, order_id: str) -> None:
    """What the store's order system records when an order misses its promised shipping date."""
    store = DemoOrders(stack.state_dir / "orders" / "demo.sqlite")
    try:
        order = store.get(order_id)
        assert order is not None
        others = [o for o in (store.get(i) for i in _ids()) if o and o.order_id != order_id]
        store.replace_all([*others, order.model_copy(
            update={"ship_by": datetime.now(UTC) - timedelta(minutes=1)})])
    finally:
        store.close()


def _ids() -> list[str]:
    return [o.order_id for o in demo.demo_orders(datetime.now(UTC))]


async def test_a_delayed_order_is_told_in_the_widget_until_unsubscribed(
        stack: StackConfig, browser: Browser) -> None:
    page, bot, system = await open_widget(stack, browser)

    await say(page, f"我的订单 {demo.PAID} 到哪了")
    await expect(bot.last.locator(".text")).to_contain_text("后四位")
    await say(page, "8000")
    await expect(bot.last.locator(".text")).to_contain_text("已付款，待发货")
    await expect(system).to_have_count(0)

    started = time.monotonic()
    miss_the_promise(stack, demo.PAID)
    await expect(system.last).to_contain_text(f"【订单提醒】您的订单 {demo.PAID} 已超过承诺的发货时间")
    latency = time.monotonic() - started
    assert latency < 10, latency  # the poller looks every second here
    await expect(system.last).to_contain_text("回复“退订”不再接收订单提醒。")

    sender = await page.evaluate("window.KefuChat.sender()")
    redis = async_client(stack.redis_url)
    try:
        turns = await ConversationStore(redis).transcript(f"web:{sender}")
        told = [t for t in turns if t.role is Role.SYSTEM]
        assert [t.meta.get("proactive") for t in told] == ["ship_delayed"]  # in the transcript
    finally:
        await redis.aclose()

    await say(page, "退订")
    await expect(bot.last.locator(".text")).to_contain_text("已退订")
    await say(page, f"我的订单 {demo.DELAYED} 到哪了")  # verified already? no: asked first
    await expect(bot.last.locator(".text")).to_contain_text("后四位")
    await say(page, "8000")
    await expect(bot.last.locator(".text")).to_contain_text("已超过承诺的发货时间")
    await asyncio.sleep(4)  # four polls
    await expect(system).to_have_count(1)


async def test_the_store_webhook_tells_the_widget_once(stack: StackConfig,
                                                       browser: Browser) -> None:
    page, bot, system = await open_widget(stack, browser)
    await say(page, f"我的订单 {demo.REFUNDING} 退款到账了吗")
    await expect(bot.last.locator(".text")).to_contain_text("后四位")
    await say(page, "8000")
    await expect(bot.last.locator(".text")).to_contain_text(f"订单 {demo.REFUNDING}（")

    # the record still says "approved": only the store's event (typed) can tell this one
    body = json.dumps({"event_id": f"e2e-refund-{time.time_ns()}", "order_id": demo.REFUNDING,
                       "event": "refund_completed"}).encode()
    stamp = str(int(time.time()))
    signed = {"Content-Type": "application/json", "X-Kefu-Timestamp": stamp,
              "X-Kefu-Signature": sign(ORDER_WEBHOOK_SECRET, stamp, body)}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=20) as client:
        forged = await client.post(PATH, content=body, headers={
            **signed, "X-Kefu-Signature": sign("not-the-secret", stamp, body)})
        assert forged.status_code == 401
        told = await client.post(PATH, content=body, headers=signed)
        assert told.status_code == 200 and told.json()["told"] == 1, told.text
        await expect(system.last).to_contain_text(
            f"【退款提醒】您订单 {demo.REFUNDING} 的退款 ¥129.00 已退回原支付账户")
        again = await client.post(PATH, content=body, headers=signed)
        assert again.json()["duplicate"] is True
    await asyncio.sleep(2)  # two polls: the poller does not tell it either
    await expect(system).to_have_count(1)
