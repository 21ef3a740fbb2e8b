"""The knowledge admin over HTTP: a real server, real Redis, the real model, console logins."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from kefu.conversation import BotAnalysis, ConversationStore, utcnow
from kefu.escalations import record_escalation
from kefu.redis import async_client
from knowledge.loader import dump_yaml
from knowledge.models import Category, Entry, KnowledgeBase
from knowledge.settings import KnowledgeSettings
from knowledge.store import KnowledgeStore
from tests.helpers.e5_model import e5_encoder
from tests.helpers.kb_admin_app import (
    AFTER_D12,
    AGENT,
    BEFORE_D12,
    COUPON_QUESTION,
    D12_END,
    D12_START,
    INSIDE_D12,
    MANAGER,
    PASSWORD,
    add_accounts,
    campaign_file,
    create_admin_app,
    shop_store,
)
from tests.helpers.live_server import serve

pytestmark = [pytest.mark.redis, pytest.mark.model, pytest.mark.slow]


@pytest.fixture
async def http(
    redis_url: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[httpx.AsyncClient]:
    redis = async_client(redis_url)
    await KnowledgeStore(redis).publish(shop_store(), author="seed")
    await redis.aclose()
    await add_accounts(redis_url)
    settings = KnowledgeSettings(redis_url=redis_url, demo_store=tmp_path / "none.yaml")
    built = create_admin_app(settings, e5_encoder(tmp_path_factory))
    async with serve(built.app) as server, httpx.AsyncClient(base_url=server.url,
                                                             timeout=120) as client:
        yield client


async def login(http: httpx.AsyncClient, username: str) -> dict[str, str]:
    res = await http.post("/api/v1/agent/login", json={"username": username, "password": PASSWORD})
    assert res.status_code == 200, res.text
    return {"Authorization": f"Bearer {res.json()['token']}"}


def yaml_file(kb: KnowledgeBase, name: str = "d12.yaml") -> dict[str, tuple[str, bytes, str]]:
    return {"file": (name, dump_yaml(kb).encode("utf-8"), "application/yaml")}


async def decide(http: httpx.AsyncClient, text: str, at: datetime,
                 staff: dict[str, str]) -> dict[str, object]:
    """The decision as of ``at`` (another time than now: a staff token's ``staff`` headers)."""
    res = await http.post("/api/v1/knowledge/decide", headers=staff,
                          json={"text": text, "at": at.isoformat()})
    assert res.status_code == 200, res.text
    body: dict[str, object] = res.json()
    return body


async def answers_within(http: httpx.AsyncClient, at: datetime, expected: str,
                         seconds: float, staff: dict[str, str]) -> None:
    """The running bot answers the coupon question with ``expected`` within ``seconds``."""
    started = time.monotonic()
    while (answer := answered(await decide(http, COUPON_QUESTION, at, staff))) != expected:
        assert time.monotonic() - started < seconds, f"still answering {answer}"
        await asyncio.sleep(0.05)


def answered(decision: dict[str, object]) -> str | None:
    entry = decision.get("entry")
    return entry["entry_id"] if decision["kind"] == "answer" and isinstance(entry, dict) else None


async def test_roles_agents_look_but_only_managers_change(http: httpx.AsyncClient) -> None:
    assert (await http.get("/api/v1/kb/versions")).status_code == 401
    agent = await login(http, AGENT)
    manager = await login(http, MANAGER)

    versions = await http.get("/api/v1/kb/versions", headers=agent)
    assert versions.status_code == 200
    live = versions.json()["live"]
    assert [v["id"] for v in versions.json()["versions"]] == [live]
    res = await http.post("/api/v1/kb/drafts", headers=agent, files=yaml_file(campaign_file()),
                          data={"mode": "merge"})
    assert res.status_code == 403 and res.json()["code"] == "not_authorized"

    review = await http.post("/api/v1/kb/drafts", headers=manager, data={"mode": "merge"},
                             files=yaml_file(campaign_file()))
    assert review.status_code == 200, review.text
    draft_id = review.json()["draft"]["id"]
    assert (await http.get(f"/api/v1/kb/drafts/{draft_id}", headers=agent)).status_code == 200
    publish = await http.post(f"/api/v1/kb/drafts/{draft_id}/publish", headers=agent, json={})
    assert publish.status_code == 403
    rollback = await http.post("/api/v1/kb/rollback", headers=agent, json={"version": live})
    assert rollback.status_code == 403
    assert (await http.get("/api/v1/kb/versions", headers=agent)).json()["live"] == live


async def test_upload_problems_come_back_row_by_row(http: httpx.AsyncClient) -> None:
    manager = await login(http, MANAGER)
    csv = "id,question,answer,category\nok,能开发票吗,可以,aftersale\nbad id,问,答,presale\n"
    res = await http.post("/api/v1/kb/drafts", headers=manager,
                          files={"file": ("kb.csv", csv.encode(), "text/csv")})
    assert res.status_code == 422
    (problem,) = res.json()["problems"]
    assert (problem["location"], problem["field"]) == ("row 3", "id")
    bad_type = await http.post("/api/v1/kb/drafts", headers=manager,
                               files={"file": ("kb.txt", b"x", "text/plain")})
    assert bad_type.status_code == 422 and "unsupported" in bad_type.json()["problems"][0]["message"]
    missing = await http.get("/api/v1/kb/drafts/dnope", headers=manager)
    assert missing.status_code == 404


async def test_campaign_preview_publish_answer_in_window_and_roll_back(
    http: httpx.AsyncClient,
) -> None:
    manager = await login(http, MANAGER)
    first = (await http.get("/api/v1/kb/versions", headers=manager)).json()["live"]
    res = await http.post("/api/v1/kb/drafts", headers=manager, data={"mode": "merge"},
                          files=yaml_file(campaign_file()))
    assert res.status_code == 200, res.text
    review = res.json()
    draft_id = review["draft"]["id"]
    assert [c["entry_id"] for c in review["diff"]["added"]] == ["d12-coupons"]
    assert review["diff"]["removed"] == [] and review["gate"]["passed"] is True
    assert review["gate"]["draft_accuracy"] == 1.0
    assert [w["campaign"] for w in review["calendar"]] == ["double12"]

    async def try_(at: datetime, **target: str) -> dict[str, object]:
        body = {"text": COUPON_QUESTION, "at": at.isoformat(), **target}
        res = await http.post("/api/v1/kb/try", headers=manager, json=body)
        assert res.status_code == 200, res.text
        decision: dict[str, object] = res.json()["decision"]
        return decision

    assert answered(await try_(BEFORE_D12, draft_id=draft_id)) == "coupons"
    assert answered(await try_(INSIDE_D12, draft_id=draft_id)) == "d12-coupons"
    assert answered(await try_(INSIDE_D12)) == "coupons"  # live knows nothing of double 12 yet
    naive = await http.post("/api/v1/kb/try", headers=manager, json={
        "text": COUPON_QUESTION, "at": INSIDE_D12.replace(tzinfo=None).isoformat(),
        "draft_id": draft_id})
    assert answered(naive.json()["decision"]) == "d12-coupons"  # shop time when naive

    res = await http.post(f"/api/v1/kb/drafts/{draft_id}/publish", headers=manager,
                          json={"note": "double 12"})
    assert res.status_code == 200, res.text
    published = res.json()["version"]
    assert published["author"] == MANAGER and published["parent"] == first
    # the running bot answers the campaign question only inside the window (within 2 s)
    await answers_within(http, INSIDE_D12, "d12-coupons", seconds=2.0, staff=manager)
    assert answered(await decide(http, COUPON_QUESTION, BEFORE_D12, manager)) == "coupons"
    assert answered(await decide(http, COUPON_QUESTION, AFTER_D12, manager)) == "coupons"
    old = await try_(INSIDE_D12, version=first)
    assert answered(old) == "coupons"

    res = await http.post("/api/v1/kb/rollback", headers=manager, json={"version": first})
    assert res.status_code == 200 and res.json()["id"] == first
    await answers_within(http, INSIDE_D12, "coupons", seconds=2.0, staff=manager)
    versions = (await http.get("/api/v1/kb/versions", headers=manager)).json()
    assert versions["live"] == first and len(versions["versions"]) == 2
    diff = (await http.get(f"/api/v1/kb/versions/{published['id']}/diff", headers=manager)).json()
    assert [c["entry_id"] for c in diff["added"]] == ["d12-coupons"]
    audit = (await http.get("/api/v1/kb/audit", headers=manager)).json()
    assert [r["action"] for r in audit[:2]] == ["rollback", "publish"]
    calendar = (await http.get("/api/v1/kb/calendar", headers=manager,
                               params={"version": published["id"]})).json()
    assert calendar[0]["entries"][0]["entry_id"] == "d12-coupons"


async def test_gate_refusal_needs_a_written_override(http: httpx.AsyncClient) -> None:
    manager = await login(http, MANAGER)
    store = shop_store()
    worse = store.model_copy(update={  # the live version's invoice test still counts
        "entries": tuple(e for e in store.entries if e.id != "invoice"),
        "tests": tuple(t for t in store.tests if t.expected != "invoice")})
    res = await http.post("/api/v1/kb/drafts", headers=manager, files=yaml_file(worse, "kb.yaml"))
    draft_id = res.json()["draft"]["id"]
    assert res.json()["gate"]["passed"] is False

    refused = await http.post(f"/api/v1/kb/drafts/{draft_id}/publish", headers=manager, json={})
    assert refused.status_code == 409
    body = refused.json()
    assert body["code"] == "gate_refused" and body["gate"]["passed"] is False
    assert any(q["expected"] == "invoice" and not q["draft"]["correct"]
               for q in body["gate"]["questions"])

    ok = await http.post(f"/api/v1/kb/drafts/{draft_id}/publish", headers=manager,
                         json={"override_reason": "发票改由人工开具"})
    assert ok.status_code == 200 and ok.json()["overridden"] is True
    audit = (await http.get("/api/v1/kb/audit", headers=manager)).json()
    assert audit[0]["action"] == "gate_override" and audit[0]["note"] == "发票改由人工开具"
    assert audit[0]["author"] == MANAGER


async def test_topics_and_drafts_from_them(http: httpx.AsyncClient, redis_url: str) -> None:
    manager = await login(http, MANAGER)
    redis = async_client(redis_url)
    for conversation, text in (("web:1", "可以帮我包装成礼物吗"), ("web:2", "能做礼品包装吗？送人的"),
                               ("web:3", "送朋友的，能包装一下吗")):
        await record_escalation(redis, text, "handoff", conversation)
    await redis.aclose()
    topics = (await http.get("/api/v1/kb/topics", headers=manager)).json()
    (view,) = topics
    assert view["topic"]["conversations"] == 3 and view["live"]["kind"] != "answer"

    res = await http.post(f"/api/v1/kb/topics/{view['topic']['id']}/draft", headers=manager,
                          json={"answer": "可以，下单备注礼品包装。", "category": "presale",
                                "new_id": "gift-wrap"})
    assert res.status_code == 200, res.text
    assert [c["entry_id"] for c in res.json()["diff"]["added"]] == ["gift-wrap"]
    no_answer = await http.post(f"/api/v1/kb/topics/{view['topic']['id']}/draft",
                                headers=manager, json={"category": "presale"})
    assert no_answer.status_code == 422
    assert no_answer.json()["problems"][0]["field"] == "answer"
    gone = await http.post("/api/v1/kb/topics/tnope/draft", headers=manager, json={})
    assert gone.status_code == 404


async def test_page_and_templates(http: httpx.AsyncClient) -> None:
    page = await http.get("/admin/kb/")
    assert page.status_code == 200 and "知识库管理" in page.text
    assert (await http.get("/admin/kb/admin.js")).headers["content-type"].startswith(
        "text/javascript")
    assert (await http.get("/admin/kb/secrets.txt")).status_code == 404
    assert (await http.get("/api/v1/kb/templates/yaml")).status_code == 401  # staff only
    staff = await login(http, AGENT)
    for fmt in ("yaml", "csv", "xlsx"):
        res = await http.get(f"/api/v1/kb/templates/{fmt}", headers=staff)
        assert res.status_code == 200 and len(res.content) > 100
        assert f"kefu-kb-template.{fmt}" in res.headers["content-disposition"]
    assert (await http.get("/api/v1/kb/templates/docx", headers=staff)).status_code == 422


async def test_welcome_is_read_by_agents_and_set_by_managers(http: httpx.AsyncClient) -> None:
    agent = await login(http, AGENT)
    manager = await login(http, MANAGER)
    default = (await http.get("/api/v1/kb/welcome", headers=agent)).json()
    assert 3 <= len(default["zh"]["questions"]) <= 4 and default["en"]["greeting"]
    body = {"zh": {"greeting": "欢迎光临！", "questions": ["双12什么时候开始？", "怎么退货？", " "]},
            "en": {"greeting": "Welcome!", "questions": ["How do I return shoes?"]}}
    assert (await http.put("/api/v1/kb/welcome", headers=agent, json=body)).status_code == 403
    saved = await http.put("/api/v1/kb/welcome", headers=manager, json=body)
    assert saved.status_code == 200, saved.text
    assert saved.json()["zh"]["questions"] == ["双12什么时候开始？", "怎么退货？"]  # blanks dropped
    assert (await http.get("/api/v1/kb/welcome", headers=agent)).json() == saved.json()
    too_many = {**body, "zh": {"greeting": "hi", "questions": ["a", "b", "c", "d", "e"]}}
    assert (await http.put("/api/v1/kb/welcome", headers=manager, json=too_many)).status_code == 422


async def test_impact_shows_the_answers_a_campaign_file_takes_over(
    http: httpx.AsyncClient, redis_url: str,
) -> None:
    """A double-12 shipping entry stands for the everyday one (its twin) for its window only.

    (A variant repeating another entry's question, as in "几天能发货" added to the coupon entry,
    no longer takes that question over: a live campaign entry only hides its twin.)
    """
    manager = await login(http, MANAGER)
    redis = async_client(redis_url)
    await ConversationStore(redis).record_analysis(
        "web:s1", BotAnalysis(at=utcnow(), text="下单后几天能发货"), asked=True)
    await redis.aclose()
    campaign = campaign_file()
    shipping = Entry(id="d12-shipping", question="双12期间多久发货",
                     variants=("双十二什么时候发货", "大促期间几天发货"),
                     answer="双12期间付款后 5 天内发货。", category=Category.LOGISTICS,
                     campaign="double12", valid_from=D12_START, valid_until=D12_END)
    review = await http.post(
        "/api/v1/kb/drafts", headers=manager, data={"mode": "merge"},
        files=yaml_file(campaign.model_copy(update={"entries": (*campaign.entries, shipping)})))
    assert review.status_code == 200, review.text
    draft_id = review.json()["draft"]["id"]
    impact = await http.get(f"/api/v1/kb/drafts/{draft_id}/impact", headers=manager)
    assert impact.status_code == 200, impact.text
    report = impact.json()
    assert report["tests"] == 3 and report["shopper_questions"] == 1
    taken = {(r["text"], r["source"]) for r in report["rows"]
             if r["after"]["entry_id"] == "d12-shipping" and r["before"]["entry_id"] == "ship-time"}
    assert ("几天能发货呀", "test") in taken and ("下单后几天能发货", "shopper") in taken
    # asked now and at the campaign's start and end; the shipping entry answers only inside it
    times = [datetime.fromisoformat(t) for t in report["times"]]
    assert D12_START in times and D12_END in times
    assert all(D12_START <= datetime.fromisoformat(r["at"]) <= D12_END for r in report["rows"]
               if r["after"]["entry_id"] == "d12-shipping")
