"""The work-order routes and the console's work-order list in Chromium."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from playwright.async_api import Page, expect

from kefu.accounts import AgentRole
from kefu.conversation import Role
from kefu.redis import async_client
from orders import demo_data as demo
from orders.workorders import WorkOrderKind
from tests.handoff.conftest import PASSWORD
from tests.helpers.fake_bot_api import PHOTO_BYTES
from tests.orders.conftest import Console, console, login, web_photos

pytestmark = pytest.mark.redis

CONV = "web:wo-shopper"
PHOTO = "photo:telegram:AgADphoto-large-id"  # what a photo answer keeps


@pytest.fixture
async def running(redis_url: str) -> AsyncIterator[Console]:
    async with console(redis_url, None) as started:
        yield started


async def test_agents_of_the_group_claim_note_and_close(running: Console) -> None:
    agents = running.service.agents
    await agents.add("kim", PASSWORD, ["aftersale"], display_name="小金")
    await agents.add("pre", PASSWORD, ["presale"], display_name="小普")
    await agents.add("boss", PASSWORD, ["presale"], role=AgentRole.MANAGER, display_name="经理")
    order, _ = await running.work_orders.create(CONV, "web", WorkOrderKind.GIFT_REGISTRATION,
                                                demo.GIFT_PENDING, {"address": "上海 1号"})
    url = f"{running.url}/api/v1/work-orders"
    assert httpx.get(url).status_code == 401
    kim = {"Authorization": f"Bearer {login(running.url, 'kim')}"}
    pre = {"Authorization": f"Bearer {login(running.url, 'pre')}"}
    boss = {"Authorization": f"Bearer {login(running.url, 'boss')}"}
    assert [o["id"] for o in httpx.get(url, headers=kim).json()["work_orders"]] == [order.id]
    assert httpx.get(url, headers=pre).json()["work_orders"] == []
    assert len(httpx.get(url, headers=boss).json()["work_orders"]) == 1
    refused = httpx.post(f"{url}/{order.id}/claim", headers=pre)
    assert refused.status_code == 403
    claimed = httpx.post(f"{url}/{order.id}/claim", headers=kim).json()
    assert claimed["status"] == "in_progress" and claimed["owner"] == "kim"
    again = httpx.post(f"{url}/{order.id}/claim", headers=kim)
    assert again.status_code == 409 and again.json()["code"] == "work_order_state"
    assert httpx.post(f"{url}/{order.id}/notes", headers=kim, json={"text": ""}).status_code == 422
    httpx.post(f"{url}/{order.id}/notes", headers=kim, json={"text": "仓库备货"}).raise_for_status()
    closed = httpx.post(f"{url}/{order.id}/close", headers=kim, json={"text": "已补发"}).json()
    assert closed["status"] == "closed"
    assert httpx.get(url, params={"status": "open"}, headers=kim).json()["work_orders"] == []
    assert httpx.post(f"{url}/GR-none/claim", headers=kim).status_code == 404


async def test_the_photo_is_fetched_from_its_channel(running: Console) -> None:
    await running.service.agents.add("kim", PASSWORD, ["aftersale"], display_name="小金")
    await running.service.agents.add("pre", PASSWORD, ["presale"], display_name="小普")
    kim = {"Authorization": f"Bearer {login(running.url, 'kim')}"}
    url = f"{running.url}/api/v1/work-orders"

    async def exchange(fields: dict[str, str]) -> str:
        order, _ = await running.work_orders.create(
            f"telegram:{len(fields)}{fields.get('photo', '')}", "telegram",
            WorkOrderKind.EXCHANGE, demo.TWO_ITEMS, {"item": "运动手环 B2", **fields})
        return order.id

    with_photo = await exchange({"photo": PHOTO})
    got = httpx.get(f"{url}/{with_photo}/photo", headers=kim)
    assert got.status_code == 200 and got.content == PHOTO_BYTES
    assert got.headers["content-type"] == "image/png"
    assert httpx.get(f"{url}/{with_photo}/photo").status_code == 401
    pre = {"Authorization": f"Bearer {login(running.url, 'pre')}"}
    assert httpx.get(f"{url}/{with_photo}/photo", headers=pre).status_code == 403
    for fields in ({}, {"photo": "photo:wechat:abc"}, {"photo": "photo:telegram:gone-1"}):
        missing = httpx.get(f"{url}/{await exchange(fields)}/photo", headers=kim)
        assert missing.status_code == 404 and missing.json()["code"] == "photo_unavailable"


async def test_a_web_chat_photo_is_served_for_its_own_conversation_only(
        running: Console, redis_url: str) -> None:
    await running.service.agents.add("kim", PASSWORD, ["aftersale"], display_name="小金")
    await running.service.agents.add("pre", PASSWORD, ["presale"], display_name="小普")
    kim = {"Authorization": f"Bearer {login(running.url, 'kim')}"}
    url = f"{running.url}/api/v1/work-orders"
    redis = async_client(redis_url)
    try:
        photo = await web_photos(redis).keep("web:photo-shopper", PHOTO_BYTES)
    finally:
        await redis.aclose()

    async def exchange(conversation: str) -> str:
        order, _ = await running.work_orders.create(
            conversation, "web", WorkOrderKind.EXCHANGE, demo.TWO_ITEMS,
            {"item": "运动手环 B2", "photo": f"photo:web:{photo.id}"})
        return order.id

    own = await exchange("web:photo-shopper")
    got = httpx.get(f"{url}/{own}/photo", headers=kim)
    assert got.status_code == 200 and got.content == PHOTO_BYTES
    assert got.headers["content-type"] == "image/png"
    pre = {"Authorization": f"Bearer {login(running.url, 'pre')}"}
    assert httpx.get(f"{url}/{own}/photo", headers=pre).status_code == 403
    # a shopper who typed another conversation's photo reference into their own flow
    stolen = httpx.get(f"{url}/{await exchange('web:someone-else')}/photo", headers=kim)
    assert stolen.status_code == 404 and stolen.json()["code"] == "photo_unavailable"


@pytest.mark.browser
@pytest.mark.slow
async def test_the_console_work_order_list(running: Console, page: Page) -> None:
    await running.service.agents.add("kim", PASSWORD, ["aftersale"], display_name="小金")
    await running.service.conversations.set_profile(CONV, language="zh", channel="web")
    order, _ = await running.work_orders.create(CONV, "web", WorkOrderKind.GIFT_REGISTRATION,
                                                demo.GIFT_PENDING, {"address": "张三 上海 100号"})
    exchange, _ = await running.work_orders.create(
        CONV, "telegram", WorkOrderKind.EXCHANGE, demo.TWO_ITEMS,
        {"item": "运动手环 B2", "reason": "表带断了", "photo": PHOTO})
    page.set_default_timeout(10_000)
    await page.goto(f"{running.url}/console/")
    await page.get_by_test_id("login-username").fill("kim")
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    listed = page.locator(f"[data-testid=work-order][data-work-order-id='{exchange.id}']")
    await expect(listed).to_contain_text(f"换货 Exchange · 订单 {demo.TWO_ITEMS}")
    await expect(listed.locator("[data-field=item]")).to_have_text("商品 Item: 运动手环 B2")
    await expect(listed.locator("[data-field=photo]")).to_have_text(f"照片 Photo: {PHOTO}")
    await listed.get_by_test_id("work-order-photo-open").click()
    photo = listed.get_by_test_id("work-order-photo")
    await expect(photo).to_be_visible()
    assert await photo.evaluate("img => img.complete && img.naturalWidth") == 1
    item = page.locator(f"[data-testid=work-order][data-work-order-id='{order.id}']")
    await expect(item.get_by_test_id("work-order-status")).to_have_text("待处理 Open")
    await expect(item).to_contain_text("地址 Address: 张三 上海 100号")
    await expect(item).to_contain_text(f"赠品登记 Gift registration · 订单 {demo.GIFT_PENDING}")
    await item.get_by_test_id("work-order-claim").click()
    await expect(item.get_by_test_id("work-order-status")).to_have_text("处理中 In progress")
    await expect(item.get_by_test_id("work-order-claim")).to_have_count(0)
    await item.get_by_test_id("work-order-close").click()  # no note: refused on the page
    await expect(page.get_by_test_id("toast")).to_contain_text("请先填写备注")
    await item.get_by_test_id("work-order-note").fill("仓库备货中")
    await item.get_by_test_id("work-order-add-note").click()
    await expect(item.get_by_test_id("work-order-note")).to_have_value("")  # redrawn after saving
    assert (await running.work_orders.get(order.id)).notes[-1].text == "仓库备货中"
    await running.work_orders.close(exchange.id, "kim", "已换新")
    await item.get_by_test_id("work-order-note").fill("已补发，顺丰 SF9")
    await item.get_by_test_id("work-order-close").click()
    await expect(item).to_have_count(0)
    await expect(page.get_by_test_id("work-orders-empty")).to_be_visible()
    told = [t.text for t in await running.service.conversations.transcript(CONV)
            if t.role is Role.SYSTEM]
    assert told[-1].endswith("已完成。处理说明：已补发，顺丰 SF9")
