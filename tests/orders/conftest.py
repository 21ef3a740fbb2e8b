"""A console app for the orders tests: the handoff router (the console page and its API), the
agents' order lookup and the work-order routes, over real Redis, served by uvicorn in a thread.
The order system is the real HTTP adapter talking to the demo order service in process.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import Page, async_playwright

from bot.channels.photos import PhotoStore
from handoff.api import create_router as handoff_router
from handoff.service import HandoffService
from kefu.conversation import ConversationStore
from kefu.http import install_error_handlers
from kefu.redis import async_client
from orders import HttpOrderSystem, proactive_api, workorders_api
from orders import api as orders_api
from orders.contract import OrderSystem
from orders.proactive import Templates
from orders.workorders import WorkOrderService
from tests.handoff.conftest import PASSWORD, make_settings
from tests.helpers.demo_orders import over_http, seeded
from tests.helpers.fake_bot_api import PHOTO_BYTES
from tests.helpers.processes import free_port, wait_for_http

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@dataclass
class Console:
    url: str
    service: HandoffService  # the test's own, on its own Redis client (the server's is in its loop)
    work_orders: WorkOrderService  # the test's own too


def demo_system() -> HttpOrderSystem:
    return over_http(seeded())


async def telegram_photo(file_id: str, _conversation: str) -> tuple[bytes, str]:
    """The console's Telegram photos, as the channel would fetch them (``gone…``: expired)."""
    if file_id.startswith("gone"):
        raise RuntimeError("Bad Request: wrong file_id or the file is temporarily unavailable")
    return PHOTO_BYTES, "image/png"


def web_photos(redis: Any) -> PhotoStore:
    """The web chat's photos in the test's Redis, as the gateway keeps them."""
    return PhotoStore(redis, max_bytes=5 * 1024 * 1024, ttl_seconds=3600)


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
    app.include_router(workorders_api.create_router(
        WorkOrderService(redis, service.conversations), service.agents.authenticate,
        photos={"telegram": telegram_photo, "web": web_photos(redis).fetch}))
    app.include_router(proactive_api.create_router(Templates(redis), service.agents.authenticate))
    install_error_handlers(app)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=1, loop="asyncio"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_http(f"http://127.0.0.1:{port}/console/", timeout=15)
    own = async_client(redis_url)
    try:
        conversations = ConversationStore(own)
        yield Console(f"http://127.0.0.1:{port}",
                      HandoffService(own, conversations, make_settings()),
                      WorkOrderService(own, conversations))
    finally:
        await own.aclose()
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
async def running(redis_url: str) -> AsyncIterator[Console]:
    async with console(redis_url, demo_system()) as started:
        yield started


def login(url: str, username: str, password: str = PASSWORD) -> str:
    response = httpx.post(f"{url}/api/v1/agent/login",
                          json={"username": username, "password": password})
    response.raise_for_status()
    token: str = response.json()["token"]
    return token


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = await browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900})
        yield await context.new_page()
        await browser.close()


