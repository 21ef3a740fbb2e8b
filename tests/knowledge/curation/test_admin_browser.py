"""The knowledge admin in real Chromium, over the real model and the real demo data.

A manager uploads the double-12 campaign file, previews a coupon question a minute before and at
the start of the campaign (20:00 on 12-08), publishes; the running bot's decide API answers with
the campaign entry only inside the window; a rollback restores the old answer; an agent account
cannot publish.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import uvicorn
from playwright.async_api import Browser, Page, async_playwright, expect

from kefu.conversation import BotAnalysis, ConversationStore, utcnow
from kefu.escalations import record_escalation
from kefu.redis import async_client
from knowledge.settings import DEMO_STORE_PATH, KnowledgeSettings
from tests.helpers.e5_model import e5_encoder
from tests.helpers.kb_admin_app import AGENT, CST, MANAGER, PASSWORD, add_accounts, create_admin_app
from tests.helpers.processes import free_port

pytestmark = [pytest.mark.redis, pytest.mark.model, pytest.mark.browser, pytest.mark.slow]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
CAMPAIGN_FILE = Path(__file__).resolve().parents[3] / "knowledge" / "data" / "campaign_double12.yaml"
SCREENSHOTS = Path(__file__).resolve().parents[3] / "var" / "screenshots"
QUESTION = "现在有什么优惠券可以领"
BEFORE = datetime(2026, 12, 8, 19, 59, tzinfo=CST)  # a minute before the double-12 coupons
INSIDE = datetime(2026, 12, 8, 20, 0, tzinfo=CST)  # the first minute of the campaign
AFTER = datetime(2026, 12, 20, 12, 0, tzinfo=CST)  # after the campaign ended
RESTOCK = "断码了什么时候补货？"
RESTOCK_ANSWER = "双12期间断码款暂停补货，活动结束后 12 月 15 日起陆续补货上架。"
RESTOCK_FILE = f"""\
entries:
  - id: d12-restock
    question: 双12断码了什么时候补货？
    variants: [双十二还会补货吗, 双12期间断码还补吗, 断码了什么时候补货]
    answer: {RESTOCK_ANSWER}
    category: product
    campaign: double12-2026
    valid_from: "2026-12-08T20:00:00+08:00"
    valid_until: "2026-12-12T23:59:59+08:00"
"""
GIFT_QUESTIONS = (("web:g1", "可以帮我包装成礼物吗"), ("web:g2", "能做礼品包装吗？送人的"),
                  ("web:g3", "送朋友的，能包装一下吗"))
STAFF: dict[str, dict[str, str]] = {}  # base URL → a manager's session headers
SLOW = 120_000  # ms: indexing the demo store with the real model on a busy 2-core machine


@pytest.fixture
def base_url(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app with the bundled demo store published on its first start (like a fresh install)."""
    asyncio.run(add_accounts(redis_url))
    settings = KnowledgeSettings(redis_url=redis_url, demo_store=DEMO_STORE_PATH)
    built = create_admin_app(settings, e5_encoder(tmp_path_factory))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(built.app, host="127.0.0.1", port=port,
                                           log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + SLOW / 1000
    while not server.started:  # the lifespan indexes the demo store first
        assert thread.is_alive() and time.monotonic() < deadline, "the app did not start"
        time.sleep(0.2)
    url = f"http://127.0.0.1:{port}"
    STAFF[url] = staff_headers(url)
    version = httpx.get(f"{url}/api/v1/knowledge/version", headers=STAFF[url])
    assert version.json()["version"] is not None
    yield url
    server.should_exit = True
    thread.join(timeout=15)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


async def new_page(browser: Browser) -> Page:
    context = await browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(20_000)
    return page


async def log_in(page: Page, base_url: str, username: str) -> None:
    await page.goto(f"{base_url}/admin/kb/")
    await page.get_by_test_id("login-username").fill(username)
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("app-view")).to_be_visible()


def staff_headers(base_url: str) -> dict[str, str]:
    """A manager's session (asking the bot as of another time than now is staff only)."""
    res = httpx.post(f"{base_url}/api/v1/agent/login",
                     json={"username": MANAGER, "password": PASSWORD}, timeout=30)
    return {"Authorization": f"Bearer {res.json()['token']}"}


async def bot_answer(base_url: str, at: datetime) -> str | None:
    """What the running bot answers to the coupon question as of ``at`` (entry id, or None)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        res = await http.post("/api/v1/knowledge/decide", headers=STAFF.get(base_url) or {},
                              json={"text": QUESTION, "at": at.isoformat()})
    body = res.json()
    return body["entry"]["entry_id"] if body["kind"] == "answer" else None


async def bot_answers_within(base_url: str, at: datetime, expected: str, seconds: float) -> float:
    started = time.monotonic()
    while (answer := await bot_answer(base_url, at)) != expected:
        assert time.monotonic() - started < seconds, f"still answering {answer}"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_manager_previews_publishes_and_rolls_back_a_campaign(
    base_url: str, browser: Browser, redis_url: str,
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = await new_page(browser)
    await log_in(page, base_url, MANAGER)
    await expect(page.get_by_test_id("readonly-note")).to_be_hidden()
    # the templates are staff only: the page fetches them with the session, then saves them
    async with page.expect_download() as template:
        await page.get_by_test_id("template-csv").click()
    saved = await template.value
    assert saved.suggested_filename == "kefu-kb-template.csv"
    assert "question" in Path(await saved.path()).read_text(encoding="utf-8-sig")
    first = await page.get_by_test_id("live-version").text_content()
    assert first and first != "—"
    assert await bot_answer(base_url, INSIDE) == "store-coupons"

    # a file with problems: every row is reported, as text
    await page.get_by_test_id("upload-file").set_input_files(files=[{
        "name": "bad.csv", "mimeType": "text/csv",
        "buffer": "id,question,answer,category\n<img src=x onerror=alert(1)>,问,答,presale\nok,问题,,presale\n".encode(),
    }])
    await page.get_by_test_id("upload-submit").click()
    problems = page.get_by_test_id("problem")
    await expect(problems).to_have_count(2)
    await expect(problems.first).to_contain_text("<img src=x onerror=alert(1)>")
    assert await page.get_by_test_id("problems").locator("img").count() == 0
    # in the page's language, Chinese, by default; where it is, as people count
    await expect(problems.first).to_contain_text("第 2 行")
    await expect(problems.first.get_by_test_id("problem-message")).to_contain_text("不是有效的 ID")
    await expect(problems.nth(1).get_by_test_id("problem-message")).to_have_text("不能为空")

    # a campaign file with a restock entry: while live it stands for the everyday restock entry
    # (its twin). The review shows what else it changes: a real shopper's restock question gets
    # the campaign's answer in its window, and an unrelated question keeps its answer
    redis = async_client(redis_url)
    conversations = ConversationStore(redis)
    for conversation, text in (("web:r1", RESTOCK), ("web:r2", "可以开发票吗？")):
        await conversations.record_analysis(conversation, BotAnalysis(at=utcnow(), text=text),
                                            asked=True)
    await redis.aclose()
    await page.get_by_test_id("upload-file").set_input_files(files=[{
        "name": "d12-restock.yaml", "mimeType": "application/yaml",
        "buffer": RESTOCK_FILE.encode("utf-8")}])
    await page.get_by_test_id("mode-merge").check()
    await page.get_by_test_id("upload-submit").click()
    await expect(page.get_by_test_id("problems")).to_be_hidden()  # the last upload's errors go
    await expect(page.get_by_test_id("review")).to_be_visible(timeout=SLOW)
    added = page.locator("[data-testid=diff-row][data-kind=added]")
    await expect(added).to_have_count(1)
    await expect(added.get_by_test_id("diff-answer")).to_have_text(RESTOCK_ANSWER)
    await expect(added.get_by_test_id("diff-window")).to_have_text(
        "生效 Window: double12-2026 · 2026-12-08 20:00 +08:00 → 2026-12-12 23:59 +08:00")
    # the answer policy and what to expect of a store like this, above what else the draft changes
    await expect(page.get_by_test_id("thresholds")).to_contain_text("回答策略 Answer policy")
    await expect(page.get_by_test_id("thresholds")).to_contain_text("on knowledge bases like this")
    impact = page.locator("[data-testid=impact-row][data-source=shopper]").filter(has_text=RESTOCK)
    await expect(impact.first).to_be_visible(timeout=SLOW)
    await expect(impact.first).to_have_attribute("data-before", "restock")
    await expect(impact.first).to_have_attribute("data-after", "d12-restock")
    await expect(impact.first).to_contain_text("2026-12-08 20:00 +08:00")  # the campaign's start
    assert not await page.locator("[data-testid=impact-row]").filter(has_text="可以开发票吗").count()
    await page.get_by_test_id("impact-card").screenshot(path=str(SCREENSHOTS / "kb-admin-impact.png"))

    # the campaign file, merged into the live version: review it
    await page.get_by_test_id("upload-file").set_input_files(str(CAMPAIGN_FILE))
    await page.get_by_test_id("mode-merge").check()
    await page.get_by_test_id("upload-submit").click()
    review = page.get_by_test_id("review")
    await expect(review).to_be_visible(timeout=SLOW)
    await expect(page.get_by_test_id("problems")).to_be_hidden()
    added = page.locator("[data-testid=diff-row][data-kind=added]")
    await expect(added).to_have_count(7)
    await expect(page.locator("[data-testid=diff-row][data-kind=removed]")).to_have_count(0)
    await expect(page.get_by_test_id("gate-summary")).to_have_attribute("data-passed", "true")
    # close-question warnings: those this change makes first, each naming a campaign entry
    pairs = await page.get_by_test_id("close-pair").evaluate_all(
        "items => items.map(i => [i.dataset.entry, i.dataset.other])")
    assert all(a.startswith("d12-") or b.startswith("d12-") for a, b in pairs)
    await page.screenshot(path=str(SCREENSHOTS / "kb-admin-review.png"), full_page=True)
    gate_rows = page.get_by_test_id("gate-row")  # the live tests and the campaign's own
    await expect(gate_rows.filter(has_text="双十二啥时候开始")).to_have_count(1)
    assert await gate_rows.count() >= 4
    campaign = page.locator("[data-testid=campaign][data-campaign=double12-2026]")
    await expect(campaign.locator("[data-entry=d12-store-coupons]")).to_contain_text(
        "2026-12-08 20:00 +08:00")
    # a timeline: weeks across, entries as bars, today marked, what is coming first, the past folded
    calendar = page.get_by_test_id("draft-calendar")
    await expect(calendar.get_by_test_id("timeline-today").first).to_be_visible()
    assert await calendar.get_by_test_id("timeline-week").count() >= 2
    await expect(campaign.get_by_test_id("calendar-bar").first).to_be_visible()
    shown = await calendar.locator(":scope > .timeline [data-testid=campaign]").evaluate_all(
        "blocks => blocks.map(b => [b.dataset.campaign, b.dataset.status])")
    assert shown[0] == ["spring-festival-2027", "upcoming"] and ["double12-2026", "active"] in shown
    past = calendar.get_by_test_id("calendar-past")
    await expect(past).to_contain_text("已结束 Ended")
    assert await past.locator("[data-campaign=double11-2026]").count() == 1
    await calendar.screenshot(path=str(SCREENSHOTS / "kb-admin-calendar.png"))
    draft_id = await page.get_by_test_id("draft-id").text_content()
    assert draft_id

    # try the coupon question against the draft, a minute before and at the start
    await page.get_by_test_id("tab-try").click()
    await expect(page.get_by_test_id("try-target")).to_have_value(f"draft:{draft_id}")
    await page.get_by_test_id("try-text").fill(QUESTION)
    await page.get_by_test_id("try-at").fill("2026-12-08T19:59:00")
    await page.get_by_test_id("try-submit").click()
    await expect(page.get_by_test_id("try-entry")).to_have_attribute("data-entry", "store-coupons")
    await expect(page.get_by_test_id("try-kind")).to_have_attribute("data-kind", "answer")
    await page.get_by_test_id("try-at").fill("2026-12-08T20:00:00")
    await page.get_by_test_id("try-submit").click()
    await expect(page.get_by_test_id("try-entry")).to_have_attribute("data-entry",
                                                                     "d12-store-coupons")
    candidates = page.get_by_test_id("candidate")
    assert await candidates.count() >= 2
    scores = [float(s) for s in await page.get_by_test_id("candidate-score").all_text_contents()]
    assert scores == sorted(scores, reverse=True)
    # the live version does not know the campaign yet
    await page.get_by_test_id("try-target").select_option("live")
    await page.get_by_test_id("try-submit").click()
    await expect(page.get_by_test_id("try-entry")).to_have_attribute("data-entry", "store-coupons")
    await page.screenshot(path=str(SCREENSHOTS / "kb-admin-try.png"), full_page=True)

    # an agent account sees the admin read-only and cannot publish
    agent_page = await new_page(browser)
    await log_in(agent_page, base_url, AGENT)
    await expect(agent_page.get_by_test_id("readonly-note")).to_be_visible()
    await expect(agent_page.get_by_test_id("upload-form")).to_be_hidden()
    status = await agent_page.evaluate(
        """async (id) => (await fetch(`/api/v1/kb/drafts/${id}/publish`, {method: "POST",
            headers: {"Content-Type": "application/json",
                      Authorization: "Bearer " + sessionStorage.getItem("kefu.token")},
            body: "{}"})).status""", draft_id)
    assert status == 403
    await agent_page.get_by_test_id("tab-versions").click()
    await expect(agent_page.get_by_test_id("version-row")).to_have_count(1)
    await expect(agent_page.get_by_test_id("rollback-button")).to_have_count(0)

    # publish; the running bot answers with the campaign entry only inside the window
    await page.get_by_test_id("tab-upload").click()
    await page.get_by_test_id("publish-submit").click()  # asks first, with a note
    dialog = page.get_by_test_id("confirm-dialog")
    await expect(dialog).to_be_visible()
    await expect(page.get_by_test_id("confirm-ok")).to_be_disabled()  # no note, no publish
    await page.get_by_test_id("confirm-cancel").click()
    await expect(dialog).to_have_count(0)
    assert await page.get_by_test_id("publish-result").text_content() == ""
    await page.get_by_test_id("publish-submit").click()
    await page.get_by_test_id("confirm-note").fill("双12 活动上线")
    await page.get_by_test_id("confirm-ok").click()
    await expect(page.get_by_test_id("publish-result")).to_contain_text("已发布 Published")
    published = await page.get_by_test_id("publish-result").get_attribute("data-version")
    assert published and published != first
    await expect(page.get_by_test_id("live-version")).to_have_text(published)
    assert await bot_answers_within(base_url, INSIDE, "d12-store-coupons", 2.0) < 2.0
    assert await bot_answer(base_url, BEFORE) == "store-coupons"
    assert await bot_answer(base_url, AFTER) == "store-coupons"

    # roll back in one step: the old answer is back
    await page.get_by_test_id("tab-versions").click()
    await page.locator(f"[data-testid=version-row][data-version='{first}']").get_by_test_id(
        "rollback-button").click()
    await expect(page.get_by_test_id("confirm-message")).to_contain_text(first)
    await page.get_by_test_id("confirm-note").fill("双12 券面额写错，先回滚")
    await page.get_by_test_id("confirm-ok").click()
    await expect(page.get_by_test_id("live-version")).to_have_text(first)
    await expect(page.locator(f"[data-testid=version-row][data-version='{first}']")
                 ).to_have_attribute("data-live", "true")
    # a plain swap, even while the runtime may still be calibrating the version just published
    assert await bot_answers_within(base_url, INSIDE, "store-coupons", 2.0) < 2.0
    actions = await page.locator("[data-testid=audit-row]").evaluate_all(
        "rows => rows.map(r => r.dataset.action)")
    assert actions[:2] == ["rollback", "publish"]
    audit = page.get_by_test_id("audit-row")  # each with the note given when asked
    await expect(audit.nth(0)).to_contain_text("双12 券面额写错，先回滚")
    await expect(audit.nth(1)).to_contain_text("双12 活动上线")
    await page.screenshot(path=str(SCREENSHOTS / "kb-admin-versions.png"), full_page=True)

    # learning: three shoppers' escalated questions are one topic; draft variants from it
    redis = async_client(redis_url)
    for conversation, text in GIFT_QUESTIONS:
        await record_escalation(redis, text, "handoff", conversation)
    await redis.aclose()
    await page.get_by_test_id("tab-topics").click()
    topic = page.get_by_test_id("topic")
    await expect(topic).to_have_count(1, timeout=SLOW)
    await expect(topic).to_contain_text("3 个会话 conversations")
    target = await topic.locator("[data-role=entry-id]").input_value()
    assert target  # the live entry nearest to the topic
    await topic.get_by_test_id("topic-draft-variants").click()
    await expect(page.get_by_test_id("draft-id")).not_to_have_text(draft_id, timeout=SLOW)
    changed = page.locator("[data-testid=diff-row][data-kind=changed]")
    await expect(changed).to_have_count(1)
    await expect(changed).to_have_attribute("data-entry", target)
    await expect(changed).to_contain_text("+ 问法 variant: ")
    await page.screenshot(path=str(SCREENSHOTS / "kb-admin-topic-draft.png"), full_page=True)
