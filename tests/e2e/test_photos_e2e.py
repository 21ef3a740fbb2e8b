"""A web shopper's photos reach the agent as pictures, through the whole stack in Chromium.

The shopper sends a photo in the widget before asking for a person (the bot says it reads text
only and offers one: the shopper takes it) and another once an agent has the chat; the agent's console shows both in the transcript
as thumbnails fetched from the ticket's photo route, a click opens one full size.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import FilePayload, Locator, Page, expect

from handoff.service import HandoffService
from handoff.settings import HandoffSettings
from kefu.conversation import ConversationStore
from kefu.keys import gw_photo_key
from kefu.redis import async_client
from kefu.stack import StackConfig
from tests.e2e.conftest import ConsoleAgent
from tests.helpers.fake_bot_api import PHOTO_BYTES

pytestmark = [pytest.mark.rasa, pytest.mark.redis, pytest.mark.model, pytest.mark.slow,
              pytest.mark.browser]

LIVE_MS = 15_000


@pytest.fixture
async def redis(stack: StackConfig) -> AsyncIterator[Any]:
    client = async_client(stack.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def handoff(redis: Any) -> HandoffService:
    """The stack's tickets, as the console's routes see them."""
    return HandoffService(redis, ConversationStore(redis), HandoffSettings(bcrypt_rounds=4))


async def upload(shop: Page, name: str) -> str:
    """Send a PNG from the widget; the id of its photo once the server's turn shows it."""
    before = await shop.locator(".msg.shopper.photo[data-photo-id]").count()
    png: FilePayload = {"name": name, "mimeType": "image/png", "buffer": PHOTO_BYTES}
    await shop.locator("input[type=file]").set_input_files(files=[png])
    photos = shop.locator(".msg.shopper.photo[data-photo-id]")
    await expect(photos).to_have_count(before + 1)
    await expect(photos.last.locator("img.thumb")).to_be_visible()
    photo_id = await photos.last.get_attribute("data-photo-id")
    assert photo_id
    return photo_id


async def loaded(console: Page, image: Locator) -> None:
    await expect(image).to_be_visible(timeout=LIVE_MS)
    await console.wait_for_function("img => img.complete && img.naturalWidth === 1",
                                    arg=await image.element_handle())


async def test_the_agent_sees_the_shoppers_web_photos_in_the_chat(
        stack: StackConfig, redis: Any, handoff: HandoffService, browser_page: Page,
        console_agent: ConsoleAgent) -> None:
    shop = browser_page
    shop.set_default_timeout(60_000)

    async def say(text: str) -> None:
        await shop.locator("textarea").fill(text)
        await shop.locator("textarea").press("Enter")

    console = await shop.context.new_page()
    console.set_default_timeout(30_000)
    await console_agent.log_in(console, stack.gateway_url)
    await expect(console.get_by_test_id("live-status")).to_have_attribute(  # online: takes chats
        "data-live", "on", timeout=LIVE_MS)
    await shop.bring_to_front()
    await shop.goto(f"{stack.gateway_url}/static/demo.html")
    await shop.locator(".launcher").click()
    await expect(shop.locator(".status")).to_have_attribute("data-state", "online")
    await say("你好")
    await expect(shop.locator(".msg.bot:not(.greeting)").last).to_be_visible()
    before = await upload(shop, "box.png")  # the bot reads text only and says so
    await expect(shop.locator(".msg.bot").last).to_contain_text("无法查看图片")
    conv = await redis.hget(gw_photo_key(before), "conversation")  # the widget's conversation
    assert isinstance(conv, str) and conv.startswith("web:")
    await shop.locator(".msg.bot").last.locator(".buttons button", has_text="转人工客服").click()
    ticket = None
    for _ in range(120):
        ticket = await handoff.open_ticket(conv)
        if ticket is not None:
            break
        await shop.wait_for_timeout(250)
    said = [(t.role.value, t.text) for t in await handoff.conversations.transcript(conv)]
    assert ticket is not None, f"no ticket after 转人工: {said}"

    await console.locator(f'[data-testid="queue-item"][data-ticket-id="{ticket.id}"]').click()
    await console.get_by_test_id("claim-button").click()
    await expect(console.get_by_test_id("conversation-status")).to_have_attribute(
        "data-status", "claimed", timeout=LIVE_MS)
    transcript = console.get_by_test_id("transcript")
    await loaded(console, transcript.get_by_test_id("turn-photo").first)
    assert "file_id=" not in await transcript.inner_text()  # a picture, not the reference

    during = await upload(shop, "parcel.png")  # live, over the event stream
    assert during != before
    photos = transcript.locator('[data-role="shopper"] [data-testid="turn-photo"]')
    await expect(photos).to_have_count(2, timeout=LIVE_MS)
    await loaded(console, photos.last)
    async with console.context.expect_page() as opened:
        await transcript.get_by_test_id("turn-photo-link").last.click()
    full = await opened.value
    await full.wait_for_load_state()
    assert full.url.startswith("blob:")
    await full.close()
