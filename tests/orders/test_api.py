"""The agents' order lookup (``GET /api/v1/orders/{id}``) and the console's order panel in Chromium.

A small app mounts the handoff router (the console) and the orders router over real Redis; the
order system is the real HTTP adapter talking to the demo order service in process.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import Page, async_playwright, expect

from handoff.api import create_router as handoff_router
from handoff.models import HandoffReason
from handoff.service import HandoffService
from kefu.conversation import ConversationStore
from kefu.http import install_error_handlers
from kefu.redis import async_client
from orders import HttpOrderSystem
from orders import api as orders_api
from orders import demo_data as demo
from orders.contract import OrderSystem
from orders.demo import DemoOrders, create_app, seed
from tests.handoff.conftest import PASSWORD, make_settings
from tests.helpers.processes import free_port, wait_for_http

pytestmark = pytest.mark.redis

KEY = "demo-key"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@dataclass
class Console:
    url: str
    service: HandoffService  # the test's own, on its own Redis client (the server's is in its loop)


def demo_system() -> HttpOrderSystem:
    store = DemoOrders(":memory:")
    seed(store)
    return HttpOrderSystem("http://orders.test", KEY,
                           transport=httpx.ASGITransport(app=create_app(store, KEY)))


@contextlib.asynccontextmanager
async def console(redis_url: str, system: OrderSystem | None) -> AsyncIterator[Console]:
    redis = async_client(redis_url)
    service = HandoffService(redis, ConversationStore(redis), make_settings())

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await redis.aclose()

    app = FastAPI(lifespan=lifespan)
    app.include_router(handoff_router(service))
    app.include_router(orders_api.create_router(system, service.agents.authenticate))
    install_error_handlers(app)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=1, loop="asyncio"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_http(f"http://127.0.0.1:{port}/console/", timeout=15)
    own = async_client(redis_url)
    try:
        yield Console(f"http://127.0.0.1:{port}", HandoffService(own, ConversationStore(own),
                                                                 make_settings()))
    finally:
        await own.aclose()
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
async def running(redis_url: str) -> AsyncIterator[Console]:
    async with console(redis_url, demo_system()) as started:
        yield started


def login(url: str, username: str) -> str:
    response = httpx.post(f"{url}/api/v1/agent/login",
                          json={"username": username, "password": PASSWORD})
    response.raise_for_status()
    token: str = response.json()["token"]
    return token


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


async def test_no_order_system_is_503(redis_url: str) -> None:
    async with console(redis_url, None) as bare:
        await bare.service.agents.add("kim", PASSWORD, ["logistics"], display_name="小金")
        headers = {"Authorization": f"Bearer {login(bare.url, 'kim')}"}
        answer = httpx.get(f"{bare.url}/api/v1/orders/{demo.SHIPPED}", headers=headers)
        assert answer.status_code == 503 and answer.json()["code"] == "order_system_unavailable"


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = await browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900})
        yield await context.new_page()
        await browser.close()


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
