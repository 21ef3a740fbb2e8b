"""Knowledge managers word the proactive messages: the template routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from kefu.accounts import AgentRole
from kefu.redis import async_client
from orders import demo_data as demo
from orders.proactive import OrderEvent, Templates
from tests.handoff.conftest import PASSWORD
from tests.orders.conftest import Console, console, login

pytestmark = pytest.mark.redis


@pytest.fixture
async def running(redis_url: str) -> AsyncIterator[Console]:
    async with console(redis_url, None) as started:
        yield started


async def test_managers_set_templates_agents_read_them(running: Console, redis_url: str) -> None:
    await running.service.agents.add("kim", PASSWORD, ["aftersale"], display_name="小金")
    await running.service.agents.add("boss", PASSWORD, ["presale"], role=AgentRole.MANAGER,
                                     display_name="经理")
    url = f"{running.url}/api/v1/proactive/templates"
    kim = {"Authorization": f"Bearer {login(running.url, 'kim')}"}
    boss = {"Authorization": f"Bearer {login(running.url, 'boss')}"}
    listed = httpx.get(url, headers=kim).json()
    assert listed["templates"]["ship_delayed:zh"].startswith("【订单提醒】")
    assert "order_id" in listed["variables"] and "ship_delayed" in listed["events"]
    text = "亲，订单 {order_id} 晚发货了，预计尽快发出"
    assert httpx.put(f"{url}/ship_delayed/zh", headers=kim, json={"text": text}).status_code == 403
    bad = httpx.put(f"{url}/ship_delayed/zh", headers=boss, json={"text": "{secret}"})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_template"
    assert httpx.put(f"{url}/nope/zh", headers=boss, json={"text": text}).status_code == 422
    httpx.put(f"{url}/ship_delayed/zh", headers=boss, json={"text": text}).raise_for_status()
    assert httpx.get(url, headers=kim).json()["templates"]["ship_delayed:zh"] == text
    redis = async_client(redis_url)
    try:
        rendered = await Templates(redis).render(OrderEvent.SHIP_DELAYED, "zh",
                                                 {"order_id": demo.DELAYED})
        assert rendered == f"亲，订单 {demo.DELAYED} 晚发货了，预计尽快发出回复“退订”不再接收订单提醒。"
    finally:
        await redis.aclose()
