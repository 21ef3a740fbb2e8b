"""A gift registration through the whole stack, closed by an agent in Chromium, the shopper told.

The shopper talks to the gateway's shopper API (Rasa's form behind it, the actions validating
against the demo order service); the work order appears in the console's work-order list, an
agent claims and closes it, and each change reaches the shopper's conversation; "我的工单进度"
answers from it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from kefu.stack import StackConfig
from orders import demo_data as demo
from tests.e2e.conftest import ConsoleAgent

pytestmark = [pytest.mark.rasa, pytest.mark.redis, pytest.mark.model, pytest.mark.browser,
              pytest.mark.slow]

ADDRESS = "张三 13800138000 上海市浦东新区世纪大道100号"


class Shopper:
    """A shopper on the HTTP API, keeping the conversation's token as the widget does."""

    def __init__(self, stack: StackConfig, sender: str) -> None:
        self.http = httpx.AsyncClient(base_url=stack.gateway_url, timeout=60)
        self.sender = sender
        self.token: str | None = None
        self.seen: str | None = None

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def say(self, text: str) -> list[dict[str, Any]]:
        """Send like the widget: a 429 (a long flow typed faster than a person) waits and resends."""
        while True:
            response = await self.http.post("/api/v1/messages", headers=self._auth(),
                                            json={"sender": self.sender, "text": text})
            if response.status_code != 429:
                break
            await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
        body: dict[str, Any] = response.raise_for_status().json()
        self.token = body.get("conversation_token") or self.token
        messages: list[dict[str, Any]] = body["messages"]
        if messages:
            self.seen = messages[-1]["id"]
        return messages

    async def told(self) -> list[str]:
        params = {"after": self.seen} if self.seen else {}
        response = await self.http.get(f"/api/v1/conversations/{self.sender}/messages",
                                       params=params, headers=self._auth())
        messages: list[dict[str, Any]] = response.raise_for_status().json()["messages"]
        if messages:
            self.seen = messages[-1]["id"]
        return [str(m["text"]) for m in messages]


def texts(messages: list[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("text") or "") for m in messages)


async def test_gift_registration_closed_in_the_console_and_the_shopper_told(
        stack: StackConfig, console_agent: ConsoleAgent, browser_page: Page) -> None:
    fresh = Shopper(stack, "gift-e2e")
    try:
        assert "订单号" in texts(await fresh.say("我要登记赠品"))
        # its gift has shipped already: said only once the order is shown to be the shopper's
        assert "后四位" in texts(await fresh.say(demo.GIFT_SHIPPED))
        refused = texts(await fresh.say("8000"))
        assert "已经发出，无需登记" in refused and "订单号" in refused
        assert "后四位" in texts(await fresh.say(demo.GIFT_PENDING))
        wrong = texts(await fresh.say("1234"))
        assert "手机尾号不正确" in wrong and "后四位" in wrong
        assert "地址" in texts(await fresh.say("8000"))
        assert "请写完整" in texts(await fresh.say("上海"))
        [summary] = await fresh.say(ADDRESS)
        assert f"订单：{demo.GIFT_PENDING}" in summary["text"] and "保温杯（满减赠品）" in summary["text"]
        assert [b["payload"] for b in summary["buttons"]] == ["/affirm", "/deny"]
        created = texts(await fresh.say("/affirm"))
        assert "已为您登记赠品，工单号 GR" in created
        number = created.split("工单号 ")[1].split("，")[0]

        page = browser_page
        page.set_default_timeout(20_000)
        await console_agent.log_in(page, stack.gateway_url)
        item = page.locator(f"[data-testid=work-order][data-work-order-id='{number}']")
        await expect(item.get_by_test_id("work-order-status")).to_have_text("待处理 Open")
        await expect(item).to_contain_text(ADDRESS)
        await item.get_by_test_id("work-order-claim").click()
        await expect(item.get_by_test_id("work-order-status")).to_have_text("处理中 In progress")
        assert any(f"工单 {number}" in t and "处理中" in t for t in await fresh.told())
        await item.get_by_test_id("work-order-note").fill("已补发保温杯，顺丰 SF123")
        await item.get_by_test_id("work-order-close").click()
        await expect(item).to_have_count(0)  # closed work orders leave the list
        told = await fresh.told()
        assert any(f"工单 {number}" in t and "已完成" in t and "已补发保温杯，顺丰 SF123" in t
                   for t in told), told
        progress = texts(await fresh.say("我的工单进度"))
        assert f"工单 {number}（赠品登记，订单 {demo.GIFT_PENDING}）：已完成" in progress
    finally:
        await fresh.http.aclose()
