"""The supervisor's dashboard in real Chromium: the day's figures with ECharts charts, a
drill-down from a number and from a bar, the CSV download matching the API, Chinese and English.

The day is played through the served app's own services (as the gateway and the actions would:
the app counts what its processes do), then read back through the page.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from bot.app import create_app
from bot.gateway.settings import BotSettings
from handoff.models import HandoffReason
from handoff.service import HandoffService
from kefu.accounts import AgentRole, Presence
from kefu.conversation import BotAnalysis, Button, CandidateScore, ConversationStore, Role, utcnow
from quality.runtime import QualityRuntime
from tests.handoff.conftest import PASSWORD, AgentFactory
from tests.helpers.live_server import ThreadServer, serve_in_thread
from tests.helpers.processes import free_port

pytestmark = [pytest.mark.redis, pytest.mark.browser, pytest.mark.slow]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
ECHARTS = Path(__file__).resolve().parents[2] / "quality" / "dashboard" / "echarts.min.js"
ANSWER_BUTTONS = [Button(title="有帮助 👍", payload="/feedback_helpful"),
                  Button(title="没帮助", payload="/feedback_not_helpful")]


@pytest.fixture
def server(redis_url: str) -> Iterator[ThreadServer]:
    assert ECHARTS.exists(), "run `scripts/setup.sh echarts` (make test does)"
    settings = BotSettings(redis_url=redis_url, load_knowledge=False,
                           rasa_url=f"http://127.0.0.1:{free_port()}")
    with serve_in_thread(create_app(settings)) as served:
        yield served


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    async with async_playwright() as p:
        browser: Browser = await p.chromium.launch(executable_path="/usr/bin/chromium",
                                                   args=CHROMIUM_ARGS)
        context = await browser.new_context(locale="zh-CN", accept_downloads=True,
                                            viewport={"width": 1400, "height": 1000})
        yield await context.new_page()
        await browser.close()


async def a_day(server: ThreadServer) -> None:
    """Two shoppers: one the bot answers, one who complains and is served by li, rated 4."""
    app = server.app
    conversations: ConversationStore = app.state.conversations
    handoff: HandoffService = app.state.handoff
    quality: QualityRuntime = app.state.quality

    async def play() -> None:
        await conversations.append("web:a", Role.SHOPPER, "鞋子怎么洗")
        await conversations.record_analysis("web:a", BotAnalysis(
            at=utcnow(), text="鞋子怎么洗", decision="answer", entry_id="care-shoes",
            candidates=[CandidateScore(entry_id="care-shoes", question="鞋子怎么洗", score=0.9)]))
        await conversations.append("web:a", Role.BOT, "手洗，阴干。", buttons=ANSWER_BUTTONS)
        await conversations.append("web:b", Role.SHOPPER, "我要投诉，还不退款")
        ticket = await handoff.request_handoff("web:b", reason=HandoffReason.COMPLAINT,
                                               channel="web", group="aftersale")
        li = await handoff.agents.get("li")
        await handoff.claim(ticket.id, li)
        await handoff.reply(ticket.id, li, "非常抱歉，马上为您退款")
        await handoff.resolve(ticket.id, li, return_to_bot=False)  # no Rasa here
        await handoff.rate("web:b", 4)
        await quality.monitor.drain()

    await server.call(play())


async def test_dashboard_figures_charts_drill_down_and_csv(
        server: ThreadServer, page: Page, service: HandoffService,
        make_agent: AgentFactory) -> None:
    await make_agent("li", ["aftersale"])
    await make_agent("boss", ["presale", "aftersale", "logistics"], role=AgentRole.MANAGER)
    await service.agents.set_presence("boss", Presence.ONLINE)
    await a_day(server)
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()

    page.set_default_timeout(10_000)
    await page.goto(f"{server.url}/quality/")
    await page.get_by_test_id("login-username").fill("boss")
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("day")).to_have_value(today)
    await expect(page.get_by_test_id("figure-conversations-value")).to_have_text("2")
    await expect(page.get_by_test_id("figure-handed-value")).to_have_text("1")
    await expect(page.get_by_test_id("figure-containment-value")).to_have_text("50.0%")
    await expect(page.get_by_test_id("figure-closed-value")).to_have_text("1")
    await expect(page.get_by_test_id("figure-response-value")).to_have_text("100.0%")
    for chart in ("hourly", "reasons", "durations", "length", "csat", "alerts"):
        await expect(page.get_by_test_id(f"chart-{chart}").locator("canvas")).to_have_count(1)
    assert await page.evaluate("typeof echarts.init") == "function"  # served by kefu, no CDN
    scripts = await page.eval_on_selector_all("script[src]", "s => s.map(x => x.src)")
    assert all(src.startswith(server.url) for src in scripts)

    # a number opens the conversations behind it
    await page.get_by_test_id("figure-handed").click()
    drill = page.get_by_test_id("drill-item")
    await expect(drill).to_have_count(1)
    await expect(drill).to_have_attribute("data-conversation", "web:b")
    # ... and so does a bar: the "complaint" bar of the handoff reasons
    await page.get_by_test_id("drill-close").click()
    x, y = await page.evaluate("""() => {
        const node = document.querySelector('[data-testid=chart-reasons]');
        node.scrollIntoView();
        const chart = echarts.getInstanceByDom(node);
        const [px, py] = chart.convertToPixel({seriesIndex: 0}, [0, 0.5]);
        const box = node.getBoundingClientRect();
        return [box.left + px, box.top + py];
    }""")
    await page.mouse.click(x, y)
    await expect(page.get_by_test_id("drill")).to_have_attribute("data-figure",
                                                                 "handoff:complaint")
    await expect(drill).to_have_count(1)

    # the CSV of the day's chats downloads and says what the API says
    async with page.expect_download() as waiting:
        await page.get_by_test_id("export-records").click()
    download = await waiting.value
    text = Path(await download.path()).read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    async with httpx.AsyncClient(base_url=server.url) as http:
        token = (await http.post("/api/v1/agent/login", json={
            "username": "boss", "password": PASSWORD})).json()["token"]
        api = (await http.get("/api/v1/quality/records", params={"day": today},
                              headers={"Authorization": f"Bearer {token}"})).json()
    assert [(r["ticket_id"], r["agent"], r["rating"], r["rules_hit"]) for r in rows] == [
        (a["ticket_id"], a["agent"], str(a["rating"]), "|".join(a["rules_hit"])) for a in api]
    assert rows[0]["rules_hit"] == "complaint-threat|refund-anger"
    await expect(page.get_by_test_id("top-answered-item")).to_have_attribute("data-entry",
                                                                            "care-shoes")

    # a group selected: its own figures (web:a, the bot's alone, is in no group), its drill-downs
    await expect(page.get_by_test_id("scope-note")).to_have_count(0)
    await page.get_by_test_id("scope").select_option("g:aftersale")
    await expect(page.get_by_test_id("figure-conversations-value")).to_have_text("1")
    await expect(page.get_by_test_id("figure-containment-value")).to_have_text("—")
    await expect(page.get_by_test_id("scope-note")).to_be_visible()
    await page.get_by_test_id("figure-conversations").click()
    await expect(page.get_by_test_id("drill")).to_have_attribute("data-figure",
                                                                 "handed:g:aftersale")
    await expect(drill).to_have_count(1)
    await expect(drill).to_have_attribute("data-conversation", "web:b")
    await page.get_by_test_id("drill-close").click()
    await page.get_by_test_id("scope").select_option("g:presale")
    await expect(page.get_by_test_id("figure-conversations-value")).to_have_text("0")
    await page.get_by_test_id("scope").select_option("store")
    await expect(page.get_by_test_id("figure-conversations-value")).to_have_text("2")

    # the supervisor edits the rules: each save a new version, in the audit log
    await expect(page.get_by_test_id("rules-version")).to_have_text("0")
    dismissive = page.locator("[data-testid=rule][data-rule=dismissive]")
    await dismissive.locator("[data-field=enabled]").uncheck()
    await page.get_by_test_id("rules-comment").fill("试行一周：推诿用语不再提醒")
    await page.get_by_test_id("rules-save").click()
    await expect(page.get_by_test_id("rules-version")).to_have_text("1")
    await page.get_by_test_id("new-rule-id").fill("no-qin")
    await page.get_by_test_id("new-rule-name").fill("不许叫亲")
    await page.get_by_test_id("new-rule-patterns").fill("亲爱的, 亲~")
    await page.get_by_test_id("new-rule-action").select_option("block")
    await page.get_by_test_id("new-rule-add").click()
    await expect(page.get_by_test_id("rules-version")).to_have_text("2")
    await expect(page.get_by_test_id("audit-entry")).to_have_count(2)
    await expect(page.get_by_test_id("audit-entry").first).to_contain_text("+no-qin")
    async with httpx.AsyncClient(base_url=server.url) as http:
        live = (await http.get("/api/v1/quality/rules",
                               headers={"Authorization": f"Bearer {token}"})).json()
    by_id = {r["id"]: r for r in live["rules"]}
    assert live["version"] == 2 and by_id["dismissive"]["enabled"] is False
    assert (by_id["no-qin"]["patterns"], by_id["no-qin"]["action"]) == (["亲爱的", "亲~"], "block")

    await page.get_by_test_id("lang-toggle").click()
    await expect(page.get_by_text("Handoffs by reason")).to_be_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)
