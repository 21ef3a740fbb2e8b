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


async def test_preview_reset_and_what_is_customised(running: Console) -> None:
    await running.service.agents.add("kim", PASSWORD, ["aftersale"], display_name="小金")
    await running.service.agents.add("boss", PASSWORD, ["presale"], role=AgentRole.MANAGER,
                                     display_name="经理")
    url = f"{running.url}/api/v1/proactive/templates"
    kim = {"Authorization": f"Bearer {login(running.url, 'kim')}"}
    boss = {"Authorization": f"Bearer {login(running.url, 'boss')}"}
    shown = httpx.post(f"{url}/preview", headers=kim, json={
        "event": "refund_completed", "language": "en", "text": "Refund {amount} for {order_id}"})
    assert shown.json() == {"order_id": demo.REFUNDED, "text": (
        f"Refund 259.00 for {demo.REFUNDED} Reply \"unsubscribe\" to stop these messages.")}
    wrong = httpx.post(f"{url}/preview", headers=kim, json={
        "event": "refund_completed", "language": "en", "text": "{refund_id}"})
    assert wrong.status_code == 422 and "unknown variables ['refund_id']" in wrong.json()["detail"]
    assert httpx.post(f"{url}/preview", json={"event": "gift_shipped", "language": "zh",
                                              "text": "x"}).status_code == 401
    httpx.put(f"{url}/gift_shipped/en", headers=boss, json={"text": "{gift} shipped"}) \
        .raise_for_status()
    listed = httpx.get(url, headers=kim).json()
    assert listed["customised"] == ["gift_shipped:en"]
    default = listed["defaults"]["gift_shipped:en"]
    assert default.startswith("[Gift]") and listed["templates"]["gift_shipped:en"] != default
    assert httpx.delete(f"{url}/gift_shipped/en", headers=kim).status_code == 403
    assert httpx.delete(f"{url}/gift_shipped/fr", headers=boss).status_code == 422
    reset = httpx.delete(f"{url}/gift_shipped/en", headers=boss)
    assert reset.json() == {"event": "gift_shipped", "language": "en", "text": default}
    after = httpx.get(url, headers=kim).json()
    assert after["customised"] == [] and after["templates"]["gift_shipped:en"] == default
