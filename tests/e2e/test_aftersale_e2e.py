"""The after-sale flows through the whole stack: Rasa's form, the actions, the demo order service,
the work order in Redis, an agent closing it, the shopper told.

Exchange, invoice reissue and repair booking on the shopper API (what the web chat uses); the
return pickup on Telegram (python-telegram-bot against the fake Bot API, this test's gateway
object talking to the stack's Rasa and Redis), where the shopper answers with a photo; an exchange
in the web chat widget in Chromium, where the shopper uploads the photo and an agent opens it in
the console. Bad answers are asked again; "取消" and "转人工" stop a flow.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.async_api import FilePayload, Page, expect

from bot.channels.attachments import AttachmentDesk
from bot.channels.telegram import TelegramChannel
from bot.gateway import Gateway
from bot.gateway.rasa_client import RasaClient
from handoff.service import HandoffService
from handoff.settings import HandoffSettings
from kefu.conversation import ConversationStore, Role
from kefu.redis import async_client
from kefu.stack import StackConfig
from orders import aftersale
from orders import demo_data as demo
from orders.workorders import WorkOrder, WorkOrderKind, WorkOrderService, WorkOrderStatus
from tests.e2e.conftest import ConsoleAgent
from tests.e2e.test_workorders_e2e import Shopper, texts
from tests.helpers.fake_bot_api import PHOTO_BYTES, FakeBotApi
from tests.helpers.fake_bot_api import Shopper as TelegramUser

pytestmark = [
    pytest.mark.rasa, pytest.mark.redis, pytest.mark.model, pytest.mark.slow,
    pytest.mark.filterwarnings(
        "ignore:.*attribute `retry_after` will be of type:telegram.warnings.PTBDeprecationWarning"),
]

ADDRESS = "张三 13800138000 上海市浦东新区世纪大道100号"
TAX_ID = "91350100M000100Y43"
FAST_WORKER = {"block_ms": 100, "backoff_seconds": 0.05, "max_backoff_seconds": 0.2}


@pytest.fixture
async def work_orders(stack: StackConfig) -> AsyncIterator[WorkOrderService]:
    """The stack's work orders, as the console's routes see them."""
    redis = async_client(stack.redis_url)
    yield WorkOrderService(redis, ConversationStore(redis))
    await redis.aclose()


async def closed_and_told(shopper: Shopper, work_orders: WorkOrderService, number: str,
                          note: str) -> WorkOrder:
    """An agent claims and closes the work order; the shopper hears both."""
    await work_orders.claim(number, "kim")
    closed = await work_orders.close(number, "kim", note)
    told = await shopper.told()
    assert any(f"工单 {number}" in t and "处理中" in t for t in told), told
    assert any(f"工单 {number}" in t and "已完成" in t and note in t for t in told), told
    return closed


def number_in(text: str) -> str:
    return text.split("工单号 ")[1].split("，")[0]


async def test_exchange_from_first_sentence_to_closed(stack: StackConfig,
                                                      work_orders: WorkOrderService) -> None:
    shopper = Shopper(stack, "exchange-e2e")
    try:
        assert "换货" in texts(await shopper.say("鞋子小了想换大一码"))
        # paid, not delivered yet: said only once the order is shown to be the shopper's
        assert "后四位" in texts(await shopper.say(demo.PAID))
        refused = texts(await shopper.say("8000"))
        assert "不能申请换货（订单需已签收）" in refused and "订单号" in refused
        assert "后四位" in texts(await shopper.say(demo.TWO_ITEMS))
        [items] = await shopper.say("8000")
        assert [b["payload"] for b in items["buttons"]] == ["家用折叠跑步机 T1", "运动手环 B2"]
        wrong = texts(await shopper.say("轻跑运动鞋 42码"))  # another order's item
        assert "这个订单里没有这件商品" in wrong and "哪件商品" in wrong
        assert "原因" in texts(await shopper.say("运动手环 B2"))
        [photo] = await shopper.say("表带断了，想换一个新的")
        assert "照片" in photo["text"] and [b["payload"] for b in photo["buttons"]] == ["跳过"]
        [summary] = await shopper.say("跳过")
        assert summary["text"].splitlines() == [
            "请确认换货申请：", f"订单：{demo.TWO_ITEMS}", "商品：运动手环 B2",
            "原因：表带断了，想换一个新的"]
        created = texts(await shopper.say("/affirm"))
        assert "已提交换货申请，工单号 EX" in created
        number = number_in(created)
        order = await work_orders.get(number)
        assert order.kind is WorkOrderKind.EXCHANGE and order.group == "aftersale"
        assert order.fields == {"item": "运动手环 B2", "reason": "表带断了，想换一个新的"}
        await closed_and_told(shopper, work_orders, number, "新手环已发出，顺丰 SF1")
        progress = texts(await shopper.say("我的工单进度"))
        assert f"工单 {number}（换货，订单 {demo.TWO_ITEMS}）：已完成" in progress
    finally:
        await shopper.http.aclose()


async def test_invoice_reissue_in_english_with_bad_answers_asked_again(
        stack: StackConfig, work_orders: WorkOrderService) -> None:
    shopper = Shopper(stack, "invoice-e2e")
    try:
        assert "order number" in texts(await shopper.say("reissue my invoice"))
        assert "last 4 digits" in texts(await shopper.say(demo.PAID))
        assert "invoice title" in texts(await shopper.say("8000"))
        assert "tax id" in texts(await shopper.say("Shanghai Kefu Sports Co Ltd"))
        bad = texts(await shopper.say("91350100M000100Y44"))
        assert "not valid" in bad and "tax id" in bad
        assert "email" in texts(await shopper.say(TAX_ID))
        bad = texts(await shopper.say("kim@"))
        assert "doesn't look right" in bad
        assert "why" in texts(await shopper.say("kim@example.com"))
        [summary] = await shopper.say("the title was wrong")
        assert "Tax id: " + TAX_ID in summary["text"]
        created = texts(await shopper.say("/affirm"))
        assert "Your invoice reissue is submitted: work order IV" in created
        number = created.split("work order ")[1].split(".")[0]
        order = await work_orders.get(number)
        assert order.fields == {"invoice_title": "Shanghai Kefu Sports Co Ltd", "tax_id": TAX_ID,
                                "email": "kim@example.com", "reason": "the title was wrong"}
        await work_orders.close(number, "kim", "invoice sent")
        told = await shopper.told()
        assert any(f"Work order {number} (invoice reissue" in t and "done" in t for t in told)
    finally:
        await shopper.http.aclose()


async def test_repair_booking_slot_in_the_past_then_a_button(
        stack: StackConfig, work_orders: WorkOrderService) -> None:
    shopper = Shopper(stack, "repair-e2e")
    try:
        assert "维修/安装预约" in texts(await shopper.say("跑步机需要师傅上门安装"))
        assert "后四位" in texts(await shopper.say(demo.TWO_ITEMS))
        await shopper.say("8000")
        await shopper.say("1")  # the first item, by its number
        await shopper.say("需要上门安装")
        assert "地址" in texts(await shopper.say("跳过"))
        [slots] = await shopper.say(ADDRESS)
        offered = [s.stored() for s in aftersale.offered_slots(datetime.now(UTC))]
        assert [b["payload"] for b in slots["buttons"]] == offered
        past = texts(await shopper.say("2020年1月1日上午"))
        assert "已经过去" in past and "上门时间" in past
        [summary] = await shopper.say(offered[3])
        assert f"上门时间：{offered[3]}" in summary["text"] and "商品：家用折叠跑步机 T1" in summary["text"]
        created = texts(await shopper.say("好的"))  # typed, not the button
        number = number_in(created)
        order = await work_orders.get(number)
        assert order.kind is WorkOrderKind.REPAIR_BOOKING and order.fields["address"] == ADDRESS
        await closed_and_told(shopper, work_orders, number, "师傅已上门安装完毕")
    finally:
        await shopper.http.aclose()


async def test_cancel_and_a_person_stop_a_flow(stack: StackConfig, someone_online: str,
                                               work_orders: WorkOrderService) -> None:
    shopper = Shopper(stack, "stop-e2e")
    try:
        await shopper.say("我要补开发票")
        await shopper.say(demo.PAID)
        cancelled = texts(await shopper.say("取消"))
        assert "已取消补开/重开发票申请，没有提交工单" in cancelled
        assert "您好" in texts(await shopper.say("你好"))  # greeted: no longer in the form
        await shopper.say("我要登记赠品")
        assert "已取消赠品登记" in texts(await shopper.say("不办了"))  # the gift form too
        await shopper.say("预约上门取件")
        await shopper.say(demo.TWO_ITEMS)
        await shopper.say("8000")
        handed = await shopper.say("转人工")
        assert handed and not any("商品" in str(m["text"]) for m in handed)
        assert await work_orders.of_conversation("web:stop-e2e") == []
        redis = async_client(stack.redis_url)
        try:
            handoff = HandoffService(redis, ConversationStore(redis),
                                     HandoffSettings(bcrypt_rounds=4))
            assert await handoff.open_ticket("web:stop-e2e") is not None
        finally:
            await redis.aclose()
    finally:
        await shopper.http.aclose()


async def test_three_wrong_phone_digits_end_the_flow_and_a_person_checks(
        stack: StackConfig, someone_online: str, work_orders: WorkOrderService) -> None:
    """Guessing the phone's digits in a flow is capped like in an order question: the item
    buttons (the order's contents) never come, the flow ends, a person checks."""
    shopper = Shopper(stack, "guess-e2e")
    try:
        await shopper.say("我要补开发票")
        assert "后四位" in texts(await shopper.say(demo.OTHERS))  # someone else's order
        not_digits = texts(await shopper.say("确认提交"))
        assert "4 位数字" in not_digits and "不正确" not in not_digits  # no try used
        assert "还可以再试 2 次" in texts(await shopper.say("8000"))  # its phone ends in 1234
        assert "还可以再试 1 次" in texts(await shopper.say("4321"))
        last = await shopper.say("0000")
        assert "验证没有通过" in texts(last)
        assert not any("发票抬头" in str(m["text"]) for m in last)  # the next question never came
        assert "已取消" not in texts(last)  # the form ended quietly, not "cancelled"
        assert await work_orders.of_conversation("web:guess-e2e") == []
        redis = async_client(stack.redis_url)
        try:
            handoff = HandoffService(redis, ConversationStore(redis),
                                     HandoffSettings(bcrypt_rounds=4))
            ticket = await handoff.open_ticket("web:guess-e2e")
            assert ticket is not None and "手机尾号验证 3 次未通过" in ticket.context.summary
        finally:
            await redis.aclose()
    finally:
        await shopper.http.aclose()


async def test_return_pickup_on_telegram_with_a_photo(stack: StackConfig,
                                                      work_orders: WorkOrderService) -> None:
    user = TelegramUser(7001)
    conv = f"telegram:{user.id}"
    redis = async_client(stack.redis_url)
    conversations = ConversationStore(redis)
    handoff = HandoffService(redis, conversations, HandoffSettings(bcrypt_rounds=4))
    rasa = RasaClient(stack.rasa_url, stack.rasa_token)
    gateway = Gateway(rasa, conversations, handoff)
    async with FakeBotApi() as api:
        channel = TelegramChannel(gateway, AttachmentDesk(gateway, conversations, handoff),
                                  conversations, redis, token=api.token, base_url=api.base_url,
                                  poll_timeout_seconds=1, worker_options=FAST_WORKER)
        await channel.start()
        try:
            await asyncio.wait_for(channel.ready.wait(), 10)

            async def turn(update: dict[str, Any]) -> str:
                before = len(api.sent(user.id))
                api.push(update)
                await api.wait_for(lambda: len(api.sent(user.id)) > before, 30)
                await asyncio.sleep(0.3)  # the rest of the same turn
                return "\n".join(api.texts(user.id)[before:])

            async def say(text: str) -> str:
                return await turn(api.text_update(user, text))

            async def press(title: str) -> str:
                sent = next(m for m in reversed(api.sent(user.id)) if m.get("reply_markup"))
                markup = sent["reply_markup"]
                buttons = [b for row in markup["inline_keyboard"] for b in row]
                data = next(b["callback_data"] for b in buttons if b["text"] == title)
                return await turn(api.button_update(user, sent, data))

            assert "退货上门取件" in await say("我要退货，帮我预约上门取件")
            await say(demo.TWO_ITEMS)
            await say("8000")
            assert "原因" in await press("运动手环 B2")
            asked = await say("不想要了")
            assert "照片" in asked
            after_photo = await turn(api.media_update(user, "photo"))  # the answer, not refused
            assert "地址" in after_photo and "只能看懂文字" not in after_photo
            await say(ADDRESS)
            first = aftersale.offered_slots(datetime.now(UTC))[0]
            summary = await press(first.label("zh"))
            assert "照片：photo:telegram:photo-large-id" in summary
            slot = first.stored()
            assert f"上门时间：{slot}" in summary
            created = await press("确认提交")
            number = number_in(created)
            order = await work_orders.get(number)
            assert order.kind is WorkOrderKind.RETURN_PICKUP and order.group == "logistics"
            assert order.fields["photo"] == "photo:telegram:photo-large-id"
            # what the console's "查看照片" gets through the channel (getFile, then the download)
            assert await channel.photo("photo-large-id", conv) == (PHOTO_BYTES, "image/png")
            assert order.fields["time_slot"] == slot
            await work_orders.close(number, "kim", "快递员已取件")
            await api.wait_for(lambda: any("快递员已取件" in t for t in api.texts(user.id)), 30)
            assert (await work_orders.get(number)).status is WorkOrderStatus.CLOSED
            # the form asks for no photo now: a photo is refused politely again
            assert "只能看懂文字" in await turn(api.media_update(user, "photo"))
            shopper_turns = [t.text for t in await conversations.transcript(conv)
                             if t.role is Role.SHOPPER]
            assert shopper_turns[-1].startswith("[图片]")
        finally:
            await channel.stop()
            await rasa.aclose()
            await redis.aclose()


@pytest.mark.browser
async def test_a_web_shopper_uploads_the_exchange_photo_and_the_agent_opens_it(
        stack: StackConfig, work_orders: WorkOrderService, browser_page: Page,
        console_agent: ConsoleAgent) -> None:
    shop = browser_page
    shop.set_default_timeout(60_000)
    bot = shop.locator(".msg.bot:not(.greeting)")

    async def say(text: str) -> None:
        await shop.locator("textarea").fill(text)
        await shop.locator("textarea").press("Enter")

    await shop.goto(f"{stack.gateway_url}/static/demo.html")
    await shop.locator(".launcher").click()
    await expect(shop.locator(".status")).to_have_attribute("data-state", "online")
    await say("鞋子小了想换大一码")
    await expect(bot.last.locator(".text")).to_contain_text("换货")
    await say(demo.TWO_ITEMS)
    await expect(bot.last.locator(".text")).to_contain_text("后四位")
    await say("8000")
    await bot.last.locator(".buttons button", has_text="运动手环 B2").click()
    await expect(bot.last.locator(".text")).to_contain_text("原因")
    await say("表带断了，想换一个新的")
    await expect(bot.last.locator(".text")).to_contain_text("照片")

    png: FilePayload = {"name": "strap.png", "mimeType": "image/png", "buffer": PHOTO_BYTES}
    await shop.locator("input[type=file]").set_input_files(files=[png])
    photo = shop.locator(".msg.shopper.photo[data-id]")
    await expect(photo.locator("img.thumb")).to_be_visible()
    photo_id = await photo.get_attribute("data-photo-id")
    reference = f"photo:web:{photo_id}"
    summary = bot.last.locator(".text")
    await expect(summary).to_contain_text("请确认换货申请")
    await expect(summary).to_contain_text(f"照片：{reference}")
    await bot.last.locator(".buttons button", has_text="确认提交").click()
    await expect(bot.last.locator(".text")).to_contain_text("已提交换货申请，工单号 EX")
    number = number_in(await bot.last.locator(".text").inner_text())
    order = await work_orders.get(number)
    assert order.channel == "web" and order.fields["photo"] == reference

    console = await shop.context.new_page()
    console.set_default_timeout(30_000)
    await console_agent.log_in(console, stack.gateway_url)
    listed = console.locator(f"[data-testid=work-order][data-work-order-id='{number}']")
    await expect(listed.locator("[data-field=photo]")).to_have_text(f"照片 Photo: {reference}")
    await listed.get_by_test_id("work-order-photo-open").click()
    opened = listed.get_by_test_id("work-order-photo")
    await expect(opened).to_be_visible()
    await console.wait_for_function("img => img.complete && img.naturalWidth === 1",
                                    arg=await opened.element_handle())
