"""The agents' order lookup (``GET /api/v1/orders/{id}``) and the console's order panel in Chromium.

A small app mounts the handoff router (the console) and the orders router over real Redis; the
order system is the real HTTP adapter talking to the demo order service in process.
"""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Page, expect

from handoff.models import HandoffReason
from orders import demo_data as demo
from tests.handoff.conftest import PASSWORD
from tests.orders.conftest import Console, console, login

pytestmark = pytest.mark.redis


async def test_agents_only_and_the_order_as_the_store_has_it(running: Console) -> None:
    await running.service.agents.add("kim", PASSWORD, ["logistics"], display_name="小金")
    url = f"{running.url}/api/v1/orders/{demo.SHIPPED}"
    assert httpx.get(url).status_code == 401
    headers = {"Authorization": f"Bearer {login(running.url, 'kim')}"}
    body = httpx.get(url, headers=headers).json()
    assert body["status"] == "shipped" and body["tracking"]["waybill"] == "SF1420938475612"
    assert body["items"][0]["name"] == "轻跑运动鞋 42码"
    missing = httpx.get(f"{running.url}/api/v1/orders/2026999999999", headers=headers)
    assert missing.status_code == 404 and missing.json()["code"] == "order_not_found"


async def test_no_order_system_is_said_so(redis_url: str) -> None:
    async with console(redis_url, None) as bare:
        await bare.service.agents.add("kim", PASSWORD, ["logistics"], display_name="小金")
        headers = {"Authorization": f"Bearer {login(bare.url, 'kim')}"}
        answer = httpx.get(f"{bare.url}/api/v1/orders/{demo.SHIPPED}", headers=headers)
        assert answer.status_code == 404
        assert answer.json()["code"] == "order_system_not_configured"


@pytest.mark.browser
@pytest.mark.slow
async def test_the_console_shows_the_tickets_order_live(running: Console, page: Page) -> None:
    service = running.service
    await service.agents.add("kim", PASSWORD, ["logistics", "aftersale"], display_name="小金")
    shipped = await service.request_handoff("web:olivia", reason=HandoffReason.EXPLICIT_REQUEST,
                                            channel="web", group="logistics",
                                            slots={"order_number": demo.SHIPPED})
    refunded = await service.request_handoff("web:rui", reason=HandoffReason.EXPLICIT_REQUEST,
                                             channel="web", group="aftersale",
                                             slots={"order_number": demo.REFUNDED})
    typo = await service.request_handoff("web:typo", reason=HandoffReason.EXPLICIT_REQUEST,
                                  channel="web", group="aftersale",
                                  slots={"order_number": "2026999999999"})
    none = await service.request_handoff("web:plain", reason=HandoffReason.EXPLICIT_REQUEST,
                                         channel="web", group="aftersale")
    page.set_default_timeout(10_000)
    await page.goto(f"{running.url}/console/")
    await page.get_by_test_id("login-username").fill("kim")
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    panel = page.get_by_test_id("order-panel")

    await page.locator(f"[data-testid=queue-item][data-ticket-id='{shipped.id}']").click()
    await expect(panel.get_by_test_id("order-status")).to_have_text("已发货 Shipped")
    await expect(panel.get_by_test_id("order-total")).to_have_text("¥399.00")
    await expect(panel.get_by_test_id("order-item")).to_have_text(["轻跑运动鞋 42码 × 1 · ¥399.00"])
    events = panel.get_by_test_id("tracking-event")
    await expect(events).to_have_count(4)
    await expect(events.first).to_contain_text("上海浦东新区 快件正在派送中")  # newest first
    await expect(panel.get_by_test_id("order-refund")).to_have_count(0)

    await page.locator(f"[data-testid=queue-item][data-ticket-id='{refunded.id}']").click()
    await expect(panel.get_by_test_id("order-status")).to_have_text("已退款 Refunded")
    await expect(panel.get_by_test_id("order-refund")).to_have_text(
        "¥259.00 · 已完成 Completed · 尺码不合适")
    await expect(panel.get_by_test_id("tracking-event")).to_have_count(0)

    await page.locator(f"[data-testid=queue-item][data-ticket-id='{typo.id}']").click()
    await expect(panel.get_by_test_id("order-error")).to_contain_text("Not found")

    await page.locator(f"[data-testid=queue-item][data-ticket-id='{none.id}']").click()
    await expect(panel).to_be_hidden()
