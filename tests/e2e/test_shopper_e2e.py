"""The shopper's path through the whole stack, in Chromium: the demo page's widget and the console.

Real redis-server, gateway (demo store, real model, Rasa's actions) and Rasa (the session
``stack``). A shopper opens the widget (greeted, with quick questions), gets a clarification with
a way out, asks about something else and is clarified, not handed off, then answered; asks for a
person while nobody is online and chooses to leave a message; an agent logs in, reads the
conversation as the shopper lived it, serves and resolves it; the status banner says where the
chat stands at every step. Expected answers come from the demo store file, not copies of it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Locator, Page, async_playwright, expect

from handoff.models import HandoffReason, TicketStatus, shopper_label
from handoff.service import HandoffService
from handoff.settings import HandoffSettings
from kefu.accounts import Presence
from kefu.conversation import ConversationStore
from kefu.redis import async_client
from kefu.stack import StackConfig
from kefu.welcome import DEFAULT_WELCOME
from knowledge.loader import load_kb
from knowledge.models import KnowledgeBase
from knowledge.settings import DEMO_STORE_PATH
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, clarified_on_two_topics

pytestmark = [pytest.mark.rasa, pytest.mark.redis, pytest.mark.model, pytest.mark.browser,
              pytest.mark.slow]

LIVE_MS = 20_000
TRACKING = "怎么查物流？"  # answered at once
INVOICE = "可以开发票吗？"  # one of the widget's default quick questions, answered at once
ORDER_TYPED = "我的订单 2026 1120 1234 5 到哪了"


@pytest.fixture(scope="module")
def demo() -> KnowledgeBase:
    return load_kb(DEMO_STORE_PATH)


def answer_of(kb: KnowledgeBase, entry_id: str) -> str:
    entry = kb.entry(entry_id)
    assert entry is not None, entry_id
    return entry.answer


def question_of(kb: KnowledgeBase, entry_id: str) -> str:
    entry = kb.entry(entry_id)
    assert entry is not None, entry_id
    return entry.question


@pytest.fixture
async def handoff(stack: StackConfig) -> AsyncIterator[HandoffService]:
    redis = async_client(stack.redis_url)
    service = HandoffService(redis, ConversationStore(redis), HandoffSettings(bcrypt_rounds=4))
    for agent in await service.agents.all():  # agents other tests left "online"
        await service.agents.set_presence(agent.username, Presence.OFFLINE)
    yield service
    await redis.aclose()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


async def new_page(browser: Browser) -> Page:
    context = await browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(LIVE_MS)
    return page


def bot_said(page: Page) -> Locator:
    return page.locator(".msg.bot:not(.greeting)")


async def say(page: Page, text: str) -> None:
    await page.locator("textarea").fill(text)
    await page.locator("textarea").press("Enter")


async def test_the_shopper_is_answered_asked_and_told_the_truth(
        stack: StackConfig, handoff: HandoffService, browser: Browser, demo: KnowledgeBase,
) -> None:
    username = f"xa-{uuid.uuid4().hex[:6]}"
    await handoff.agents.add(username, "e2e-密码-password", list(handoff.settings.groups),
                             display_name="小艾")
    shop = await new_page(browser)
    await shop.goto(f"{stack.gateway_url}/static/demo.html")
    banner = shop.locator(".banner")

    # opened: a greeting in the shopper's language with the quick questions
    await shop.locator(".launcher").click()
    greeting = shop.locator(".msg.greeting")
    await expect(greeting.locator(".text")).to_have_text(DEFAULT_WELCOME.zh.greeting)
    await expect(greeting.locator(".buttons button")).to_have_text(DEFAULT_WELCOME.zh.questions)
    await expect(shop.locator(".status")).to_have_attribute("data-state", "online")
    await greeting.locator(".buttons button", has_text=INVOICE).click()
    await expect(bot_said(shop).last.locator(".text")).to_have_text(answer_of(demo, "invoice"))

    # a clarification is a question with a way out (which questions the decision clarifies is
    # the model's call: two it clarifies now, on topics with no option in common)
    (washing, options), (parcels, _other) = clarified_on_two_topics(stack.gateway_url)
    await say(shop, washing)
    clarify = bot_said(shop).last
    await expect(clarify.locator(".text")).to_have_text("您是想问下面哪一个？")
    titles = await clarify.locator(".buttons button").all_text_contents()
    assert titles == [*(question_of(demo, o) for o in options), "都不是", "转人工"]

    # the shopper ignores the buttons and asks about something else: tried, not handed off
    await say(shop, parcels)
    await expect(bot_said(shop)).to_have_count(3)
    await expect(bot_said(shop).last.locator(".text")).to_have_text("您是想问下面哪一个？")
    await expect(banner).to_be_hidden()
    sender = await shop.evaluate("window.KefuChat.sender()")
    conversation = f"web:{sender}"
    assert await handoff.open_ticket(conversation) is None
    # "都不是": rephrase, or a person
    await bot_said(shop).last.locator(".buttons button", has_text="都不是").click()
    await expect(bot_said(shop).last.locator(".text")).to_have_text(
        "好的，看来我没理解对。您可以换个说法再问一次，或者转人工客服。")
    await say(shop, TRACKING)  # and the rephrase is answered
    await expect(bot_said(shop).last.locator(".text")).to_have_text(answer_of(demo, "tracking"))

    # a person, while nobody of the group is online: said first, and the shopper chooses
    await say(shop, "转人工")
    choice = bot_said(shop).last
    await expect(choice.locator(".text")).to_contain_text("现在物流客服都不在线")
    assert await handoff.open_ticket(conversation) is None
    await choice.locator(".buttons button", has_text="留言给客服").click()
    await expect(banner).to_have_text("已留言，客服上线后回复")
    await say(shop, ORDER_TYPED)  # to the ticket now, not the bot

    # the agent logs in: the ticket is named and summed up, the transcript reads as lived
    console = await new_page(browser)
    await console.goto(f"{stack.gateway_url}/console/")
    await console.get_by_test_id("login-username").fill(username)
    await console.get_by_test_id("login-password").fill("e2e-密码-password")
    await console.get_by_test_id("login-submit").click()
    ticket = await handoff.open_ticket(conversation)
    assert ticket is not None and ticket.offline and ticket.group == "logistics"
    item = console.locator(f"[data-testid=queue-item][data-ticket-id='{ticket.id}']")
    await expect(item.get_by_test_id("ticket-shopper")).to_have_text(
        shopper_label(conversation, "web", None))
    await expect(item.get_by_test_id("ticket-summary")).to_have_text(f"{TRACKING} · 要求人工")
    await item.click()
    await expect(console.get_by_test_id("context-order")).to_have_text("2026112012345")
    said = console.locator("[data-role=shopper] [data-testid=turn-text]")
    await expect(said.last).to_have_text(ORDER_TYPED)
    shopper_lines = await said.all_text_contents()
    assert shopper_lines == [INVOICE, washing, parcels, "点了：都不是", TRACKING, "转人工",
                             "点了：留言给客服", ORDER_TYPED]
    transcript = await console.get_by_test_id("transcript").text_content() or ""
    assert "/none_of_these" not in transcript and "/leave_message" not in transcript

    # served, then over: the banner follows
    await console.get_by_test_id("claim-button").click()
    await expect(banner).to_have_text("客服 小艾 为您服务")
    await console.get_by_test_id("resolve-note").fill("告知查物流方式")
    await console.get_by_test_id("resolve-button").click()
    await expect(banner).to_be_hidden()
    await expect(shop.locator(".msg.system").last.locator(".buttons button")).to_have_count(5)

    # with the agent online, someone is ahead in the logistics queue (and only they: earlier
    # tests' shoppers leave the queue)
    for waiting in await handoff.list_tickets(TicketStatus.WAITING, group="logistics"):
        await handoff.cancel(waiting.conversation_id)
    ahead = await handoff.request_handoff(f"web:ahead-{sender}", channel="web",
                                          reason=HandoffReason.EXPLICIT_REQUEST, group="logistics")
    await say(shop, "转人工")
    await expect(banner).to_have_text("排队中，前面还有 1 位")
    await handoff.claim(ahead.id, await handoff.agents.get(username))
    await expect(banner).to_have_text("排队中，您是下一位")
