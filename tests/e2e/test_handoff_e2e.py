"""Human handoff through the whole stack: a shopper over HTTP, an agent in the console in Chromium.

Real redis-server, gateway (serving the actions) and Rasa (the session ``stack``). The shopper talks to
the gateway's HTTP API and reads what was sent to them with ``GET .../messages?after=<id>`` like
``kefu chat`` does; the agent works in ``/console/``. Each step checks what the shopper, the agent
and Rasa's tracker see. Expected answers come from the demo store, not from copies of its text.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest
from playwright.async_api import Locator, Page, expect

from handoff.context import CATEGORY_GROUPS
from handoff.models import Ticket
from handoff.service import HandoffService
from handoff.settings import HandoffSettings
from kefu.conversation import ConversationStore
from kefu.redis import async_client
from kefu.stack import StackConfig
from knowledge.loader import load_kb
from knowledge.models import KnowledgeBase
from knowledge.settings import DEMO_STORE_PATH
from tests.e2e.conftest import ConsoleAgent

pytestmark = [pytest.mark.rasa, pytest.mark.redis, pytest.mark.model, pytest.mark.browser,
              pytest.mark.slow]

LIVE_MS = 15_000  # console updates arrive over the event stream within this
POLL_SECONDS = 15.0
ROUTINE = "跑鞋脏了要怎么清理"  # an evergreen entry the bot answers (care-shoes)
ORDER = "123456789012345678"
NEXT_QUESTION = "你们默认用哪家快递发货"  # answered by the bot after the handoff (carriers)
DURING_HANDOFF = "好的，那运费谁出？"
AGENT_REPLY = "您好，我是小李。有运费险的退货，运费由运费险理赔；没有的由买家承担。"
RATING_PAYLOADS = [f'/rate{{"score":{n}}}' for n in range(1, 6)]

T = TypeVar("T")


class Shopper:
    """A shopper on the HTTP API who remembers the id of the last message they received."""

    def __init__(self, http: httpx.AsyncClient, sender: str) -> None:
        self.http = http
        self.sender = sender
        self.conversation = f"web:{sender}"
        self.seen: str | None = None
        self.token: str | None = None  # the conversation's, from the first reply

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def say(self, text: str) -> dict[str, Any]:
        """Send a message; the gateway's reply (``messages``, ``mode``)."""
        response = await self.http.post("/api/v1/messages", headers=self._auth(),
                                        json={"sender": self.sender, "text": text, "channel": "web"})
        response.raise_for_status()
        reply: dict[str, Any] = response.json()
        self.token = reply.get("conversation_token") or self.token
        self._saw(reply["messages"])
        return reply

    async def new_messages(self) -> list[dict[str, Any]]:
        """Messages sent to the shopper since the last one they received."""
        params = {"after": self.seen} if self.seen else {}
        response = await self.http.get(f"/api/v1/conversations/{self.sender}/messages",
                                       params=params, headers=self._auth())
        response.raise_for_status()
        messages: list[dict[str, Any]] = response.json()["messages"]
        self._saw(messages)
        return messages

    async def wait_for(self, wanted: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """Poll until a wanted message arrives; every message received meanwhile."""
        got: list[dict[str, Any]] = []

        async def fetch() -> list[dict[str, Any]]:
            got.extend(await self.new_messages())
            return got

        return await poll(fetch, lambda messages: any(wanted(m) for m in messages),
                          what=f"a message to {self.sender}")

    def _saw(self, messages: list[dict[str, Any]]) -> None:
        if messages:
            self.seen = messages[-1]["id"]


async def poll(fetch: Callable[[], Awaitable[T]], done: Callable[[T], bool], *,
               what: str, timeout: float = POLL_SECONDS) -> T:
    """``fetch()`` until ``done`` holds for its value, or fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await fetch()
        if done(value):
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value: {value!r}")
        await asyncio.sleep(0.2)


class Tracker:
    """Rasa's tracker of one conversation, read over Rasa's HTTP API with the stack's token."""

    def __init__(self, stack: StackConfig, conversation: str) -> None:
        self._url = f"{stack.rasa_url}/conversations/{conversation}/tracker"
        self._token = stack.rasa_token

    async def events(self) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.get(self._url, params={"token": self._token})
        response.raise_for_status()
        events: list[dict[str, Any]] = response.json()["events"]
        return events

    async def user_texts(self) -> list[str]:
        return [e["text"] for e in await self.events() if e["event"] == "user"]


@pytest.fixture(scope="module")
def demo() -> KnowledgeBase:
    return load_kb(DEMO_STORE_PATH)


@pytest.fixture
async def http(stack: StackConfig) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60) as client:
        yield client


@pytest.fixture
async def handoff(stack: StackConfig) -> AsyncIterator[HandoffService]:
    """The handoff service on the stack's Redis, to read tickets as they are stored."""
    redis = async_client(stack.redis_url)
    yield HandoffService(redis, ConversationStore(redis), HandoffSettings(bcrypt_rounds=4))
    await redis.aclose()


def answer_of(kb: KnowledgeBase, entry_id: str) -> str:
    entry = kb.entry(entry_id)
    assert entry is not None, entry_id
    return entry.answer


def js_percent(value: float) -> str:
    """``Math.round(value * 100) + "%"`` as the console writes it."""
    return f"{math.floor(value * 100 + 0.5)}%"


async def log_in(page: Page, stack: StackConfig, agent: ConsoleAgent) -> None:
    """Open the console, log in, wait for the live event stream; mark the page to catch reloads."""
    await agent.log_in(page, stack.gateway_url)
    await expect(page.get_by_test_id("live-status")).to_have_attribute("data-live", "on",
                                                                       timeout=LIVE_MS)
    await page.evaluate("window.__sameDocument = true")


async def not_reloaded(page: Page) -> bool:
    return bool(await page.evaluate("window.__sameDocument === true"))


def queue_item(page: Page, ticket_id: str) -> Locator:
    return page.locator(f'[data-testid="queue-item"][data-ticket-id="{ticket_id}"]')


async def test_handoff_to_a_person_and_back_to_the_bot(
        stack: StackConfig, http: httpx.AsyncClient, handoff: HandoffService,
        console_agent: ConsoleAgent, browser_page: Page, demo: KnowledgeBase) -> None:
    page = browser_page
    await log_in(page, stack, console_agent)
    shopper = Shopper(http, f"handoff-{uuid.uuid4().hex[:8]}")
    tracker = Tracker(stack, shopper.conversation)

    # 1. a routine question the bot answers, an order number, then a person
    answered = await shopper.say(ROUTINE)
    assert answered["mode"] == "bot"
    assert [m["text"] for m in answered["messages"]] == [answer_of(demo, "care-shoes")]
    noted = await shopper.say(f"订单号 {ORDER}")
    assert noted["mode"] == "bot" and ORDER in noted["messages"][0]["text"]
    asked = await shopper.say("转人工")
    assert asked["mode"] == "handoff"
    ticket = await handoff.open_ticket(shopper.conversation)
    assert ticket is not None
    told = asked["messages"] + await shopper.new_messages()
    assert any(b["payload"] == "/back_to_bot" for m in told for b in m["buttons"]), \
        f"the shopper is not told they are queued: {told}"
    rasa_heard = await tracker.user_texts()
    assert rasa_heard[-1] == "转人工"

    # 2. the ticket arrives live in its group, with everything the bot knew
    care = demo.entry("care-shoes")
    assert care is not None
    assert ticket.group == CATEGORY_GROUPS[care.category.value]
    await expect(page.locator(f'[data-testid="queue-group"][data-group="{ticket.group}"] '
                              f'[data-testid="queue-item"][data-ticket-id="{ticket.id}"]')
                 ).to_have_count(1, timeout=LIVE_MS)
    await expect(queue_item(page, ticket.id)).to_have_count(1)
    await queue_item(page, ticket.id).click()

    transcript = page.get_by_test_id("transcript")
    panel = page.get_by_test_id("context-panel")
    shown = transcript.locator('[data-role="shopper"] [data-testid="turn-text"]')
    await expect(shown).to_have_text([ROUTINE, f"订单号 {ORDER}", "转人工"], timeout=LIVE_MS)
    await expect(transcript.locator('[data-role="bot"] [data-testid="turn-text"]').first
                 ).to_have_text(answer_of(demo, "care-shoes"))
    await expect(panel.get_by_test_id("context-order")).to_have_text(ORDER)
    [analysis] = [a for a in ticket.context.analyses if a.text == ROUTINE]
    assert analysis.intent and analysis.intent_confidence is not None and analysis.candidates
    assert analysis.candidates[0].entry_id == "care-shoes"
    shown_analysis = panel.get_by_test_id("analysis").filter(has_text=ROUTINE)
    await expect(shown_analysis).to_contain_text(f"意图 {analysis.intent}")
    await expect(shown_analysis.get_by_test_id("analysis-confidence")).to_have_text(
        f"置信度 {js_percent(analysis.intent_confidence)}")
    candidates = shown_analysis.get_by_test_id("candidate")
    await expect(candidates).to_have_count(len(analysis.candidates))
    for index, candidate in enumerate(analysis.candidates):
        await expect(candidates.nth(index)).to_contain_text(
            f"{candidate.score:.2f} {candidate.question}")

    # 3. claim, insert a knowledge answer, then reply in the agent's own words
    await page.get_by_test_id("claim-button").click()
    await expect(page.get_by_test_id("conversation-status")).to_have_attribute(
        "data-status", "claimed", timeout=LIVE_MS)
    await candidates.first.get_by_test_id("insert-answer").click()
    await expect(page.get_by_test_id("reply-input")).to_have_value(answer_of(demo, "care-shoes"),
                                                                   timeout=LIVE_MS)
    await page.get_by_test_id("reply-input").fill(AGENT_REPLY)
    await page.get_by_test_id("reply-send").click()
    await expect(transcript.locator('[data-role="agent"] [data-testid="turn-text"]')
                 ).to_have_text([AGENT_REPLY], timeout=LIVE_MS)
    received = await shopper.wait_for(lambda m: m["text"] == AGENT_REPLY)
    assert any(console_agent.display_name in m["text"] for m in received)  # "客服 小李 已接入"

    # 4. the shopper's next message goes to the agent, live, and never to the bot
    during = await shopper.say(DURING_HANDOFF)
    assert during == {"messages": [], "mode": "handoff"}
    await expect(shown.last).to_have_text(DURING_HANDOFF, timeout=LIVE_MS)
    assert await shopper.new_messages() == []
    assert await tracker.user_texts() == rasa_heard

    # 5. resolve back to the bot; the shopper rates the agent
    await expect(page.get_by_test_id("return-to-bot")).to_be_checked()
    await page.get_by_test_id("resolve-note").fill("已说明退货运费规则")
    await page.get_by_test_id("resolve-button").click()
    await expect(page.get_by_test_id("conversation-status")).to_have_attribute(
        "data-status", "returned", timeout=LIVE_MS)
    await expect(page.get_by_test_id("my-ticket")).to_have_count(0, timeout=LIVE_MS)
    received = await shopper.wait_for(lambda m: bool(m["buttons"]))
    [rating_request] = [m for m in received if m["buttons"]]
    assert [b["payload"] for b in rating_request["buttons"]] == RATING_PAYLOADS
    rated = await shopper.say('/rate{"score":5}')
    assert rated["mode"] == "bot" and rated["messages"]
    token = await page.evaluate("sessionStorage.getItem('kefu.token')")
    response = await http.get("/api/v1/tickets", params={"status": "resolved"},
                              headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    [closed] = [Ticket.model_validate(t) for t in response.json() if t["id"] == ticket.id]
    assert (closed.status.value, closed.rating, closed.closed_by, closed.resolution_note) == \
        ("returned", 5, console_agent.username, "已说明退货运费规则")

    # 6. the bot answers again, and Rasa's history now holds the human part
    again = await shopper.say(NEXT_QUESTION)
    assert again["mode"] == "bot"
    assert [m["text"] for m in again["messages"]] == [answer_of(demo, "carriers")]
    events = await tracker.events()
    said = [(e["event"], e.get("text")) for e in events if e["event"] in ("user", "bot")]
    human = said[said.index(("user", "转人工")):]
    assert ("bot", AGENT_REPLY) in human and ("user", DURING_HANDOFF) in human, \
        f"Rasa's tracker lacks the human part: {human}"
    agent_at = human.index(("bot", AGENT_REPLY))
    shopper_at = human.index(("user", DURING_HANDOFF))
    assert agent_at < shopper_at < human.index(("user", NEXT_QUESTION))
    [during_event] = [e for e in events if e["event"] == "user" and e["text"] == DURING_HANDOFF]
    assert during_event["metadata"]["handoff"] is True
    assert during_event["parse_data"]["intent"]["name"] == "human_conversation"
    assert await not_reloaded(page)


async def test_shopper_html_is_shown_as_text_in_the_console(
        stack: StackConfig, http: httpx.AsyncClient, handoff: HandoffService,
        console_agent: ConsoleAgent, browser_page: Page) -> None:
    page = browser_page
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await log_in(page, stack, console_agent)
    shopper = Shopper(http, f"html-{uuid.uuid4().hex[:8]}")
    first, live = "<img src=x onerror=alert(1)>", "<b>在吗</b><script>alert(2)</script>"

    await shopper.say(first)
    assert (await shopper.say("转人工"))["mode"] == "handoff"
    ticket = await handoff.open_ticket(shopper.conversation)
    assert ticket is not None
    await queue_item(page, ticket.id).click(timeout=LIVE_MS)
    texts = page.get_by_test_id("transcript").locator(
        '[data-role="shopper"] [data-testid="turn-text"]')
    await expect(texts.first).to_have_text(first, timeout=LIVE_MS)

    assert (await shopper.say(live))["mode"] == "handoff"
    await expect(texts.last).to_have_text(live, timeout=LIVE_MS)
    assert await page.locator("#app-view img, #app-view b, #app-view script").count() == 0
    assert dialogs == []
    assert await not_reloaded(page)
