"""The knowledge admin service on a real Redis with a stand-in encoder (logic, not model quality)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import redis.asyncio as aioredis

from kefu.conversation import BotAnalysis, ConversationStore, utcnow
from kefu.keys import kb_draft_key
from knowledge.curation.admin import GATE_OVERRIDE_ACTION, AdminService
from knowledge.curation.review import CLOSE_SHARE, GateReport, Severity, WindowStatus
from knowledge.errors import DraftNotFound, GateRefused, ValidationFailed, VersionNotFound
from knowledge.loader import dump_yaml, load_kb_bytes
from knowledge.models import Category, Entry, KnowledgeBase, TestQuestion
from knowledge.runtime import KnowledgeRuntime
from knowledge.settings import KnowledgeSettings
from knowledge.store import KnowledgeStore
from tests.knowledge.conftest import CST, DOUBLE11_END, DOUBLE11_START, shop_kb
from tests.knowledge.fakes import HashingEncoder
from tests.knowledge.gates import CalibrationGate

pytestmark = pytest.mark.redis

DOUBLE12_START = DOUBLE11_START.replace(month=12, day=1, hour=20)
DOUBLE12_END = DOUBLE11_END.replace(month=12, day=12)
D12 = Entry(id="d12-deposit", question="双12预售定金可以退吗",
            variants=("双十二定金能退吗", "双12付了定金不想要了"),
            answer="双12预售定金不退，商家原因除外。", category=Category.PRESALE,
            campaign="double12", valid_from=DOUBLE12_START, valid_until=DOUBLE12_END)
LIVE_TESTS = (
    TestQuestion(text="几天能发货啊", expected="ship-time", at=DOUBLE11_START - timedelta(days=3)),
    TestQuestion(text="积分能抵现吗", expected="points"),
    TestQuestion(text="发票怎么开", expected="invoice"),
)


def live_kb() -> KnowledgeBase:
    return KnowledgeBase(entries=shop_kb().entries, tests=LIVE_TESTS)


def campaign_kb() -> KnowledgeBase:
    return KnowledgeBase(entries=(*shop_kb().entries, D12), tests=(
        *LIVE_TESTS,
        TestQuestion(text="双12定金能退吗", expected="d12-deposit", at=DOUBLE12_START),
    ))


def yaml_bytes(kb: KnowledgeBase) -> bytes:
    return dump_yaml(kb).encode("utf-8")


async def started_runtime(settings: KnowledgeSettings) -> KnowledgeRuntime:
    runtime = KnowledgeRuntime(settings, encoders=(HashingEncoder(), None))
    await runtime.start()
    return runtime


@pytest.fixture
async def runtime(
    settings: KnowledgeSettings, client: aioredis.Redis,
) -> AsyncIterator[KnowledgeRuntime]:
    await KnowledgeStore(client).publish(live_kb(), author="seed")
    runtime = await started_runtime(settings)
    yield runtime
    await runtime.stop()


@pytest.fixture
def admin(runtime: KnowledgeRuntime, client: aioredis.Redis) -> AdminService:
    return AdminService(runtime, client, encoder=HashingEncoder())


# --- upload and review ------------------------------------------------------------------------


async def test_upload_keeps_a_draft_and_reviews_it_against_live(admin: AdminService) -> None:
    live_id = await admin.store.live_id()
    review = await admin.upload(yaml_bytes(campaign_kb()), "double12.yaml", author="mgr")

    assert review.draft.author == "mgr" and review.draft.filename == "double12.yaml"
    assert review.draft.entries == len(shop_kb().entries) + 1 and review.draft.tests == 4
    assert review.diff.base_version == live_id
    assert [c.entry_id for c in review.diff.added] == ["d12-deposit"]
    assert not review.diff.changed and not review.diff.removed
    assert review.gate.passed and len(review.gate.questions) == 4
    assert review.gate.draft_accuracy is not None and review.gate.live_accuracy is not None
    assert review.gate.draft_accuracy > review.gate.live_accuracy  # live cannot answer double12
    (d12,) = [w for w in review.calendar if w.campaign == "double12"]
    assert [i.entry_id for i in d12.entries] == ["d12-deposit"]
    assert (d12.starts, d12.ends) == (DOUBLE12_START, DOUBLE12_END)
    policy = review.thresholds  # the global cuts, and what to expect of this knowledge base
    assert 0.0 < policy.clarify <= 1.0 and 0.0 < policy.answer <= 1.0
    assert not policy.thin and "7 of 7 entries have variants" in policy.advice
    assert policy.held_out_right is not None and 0.0 <= policy.held_out_right <= 1.0
    # the draft is stored, survives in Redis for any process, and reads back as YAML
    again = await admin.review(review.draft.id)
    assert again.diff == review.diff
    assert load_kb_bytes((await admin.draft_yaml(review.draft.id)).encode(), "x.yaml") == campaign_kb()
    assert await admin.store.live_id() == live_id  # nothing published yet


async def test_invalid_upload_lists_every_row_and_keeps_nothing(
    admin: AdminService, client: aioredis.Redis,
) -> None:
    csv = ("id,question,answer,category,valid_from\n"
           "ok-1,能开发票吗,可以,aftersale,\n"
           "bad id,问题,答案,presale,\n"
           "no-answer,问题二,,presale,\n"
           "d12,双12定金,不退,presale,2025-12-01 20:00\n").encode()
    with pytest.raises(ValidationFailed) as failed:
        await admin.upload(csv, "kb.csv", author="mgr")
    where = [(p.location, p.field) for p in failed.value.problems]
    assert ("row 3", "id") in where and ("row 4", "answer") in where
    assert ("row 5", "valid_from") in where
    assert not [k async for k in client.scan_iter(kb_draft_key("*"))]


async def test_unknown_draft_is_reported(admin: AdminService) -> None:
    with pytest.raises(DraftNotFound):
        await admin.review("d-missing")


async def test_close_pairs_warn_about_entries_retrieval_will_confuse(admin: AdminService) -> None:
    twin = Entry(id="refund-apply", question="怎么申请退货退款", variants=("退货退款怎么申请",),
                 answer="在订单页申请退货退款。", category=Category.AFTERSALE)
    kb = KnowledgeBase(entries=(*shop_kb().entries, twin, D12))
    review = await admin.upload(yaml_bytes(kb), "kb.yaml", author="mgr")

    pairs = {frozenset((p.entry_id, p.other_id)): p for p in review.close_pairs}
    pair = pairs[frozenset(("return-policy", "refund-apply"))]
    assert pair.changed  # refund-apply is new in this draft
    # judged by the ranker: the other entry holds at least CLOSE_SHARE of the probability
    assert pair.score >= pair.threshold == CLOSE_SHARE
    assert pair.severity is (Severity.CONFUSED if pair.score >= pair.own_score else Severity.CLOSE)
    # inside its window the campaign entry hides its evergreen twin: they never compete
    assert frozenset(("ship-time", "ship-time-d11")) not in pairs
    assert all("d12-deposit" not in key for key in pairs)  # worded like no other entry


async def test_close_pairs_warn_when_a_campaign_entry_competes_with_an_unrelated_one(
    admin: AdminService,
) -> None:
    """A campaign entry hides only its twin: against any other entry it competes on its own
    signals while it is live, and the review must warn when it is worded like one of them."""
    deposit_payment = Entry(
        id="d12-deposit-payment", question="双12定金怎么付", variants=("可以用支付宝吗",),
        answer="双12定金可用支付宝或微信支付。", category=Category.PRESALE, campaign="double12",
        valid_from=DOUBLE12_START, valid_until=DOUBLE12_END)
    kb = KnowledgeBase(entries=(*shop_kb().entries, deposit_payment))
    review = await admin.upload(yaml_bytes(kb), "kb.yaml", author="mgr")

    pairs = {frozenset((p.entry_id, p.other_id)): p for p in review.close_pairs}
    pair = pairs.get(frozenset(("d12-deposit-payment", "pay-methods")))
    assert pair is not None, "a campaign entry worded like an unrelated entry is not reported"
    assert pair.changed and pair.score >= CLOSE_SHARE
    assert "可以用支付宝吗" in (pair.text, pair.other_text)


async def test_the_review_says_when_a_knowledge_base_is_too_thin(admin: AdminService) -> None:
    sheet = KnowledgeBase(entries=tuple(e.model_copy(update={"variants": ()})
                                        for e in shop_kb().entries))
    review = await admin.upload(yaml_bytes(sheet), "sheet.yaml", author="mgr")
    assert review.thresholds.thin
    assert review.thresholds.held_out_right is None  # no variant to hold out
    assert "6 of 6 entries have no variants" in review.thresholds.advice
    assert "with 3 variants per entry" in review.thresholds.advice  # what adding them buys


# --- trying questions -------------------------------------------------------------------------


async def test_try_a_question_against_draft_and_live_at_any_time(admin: AdminService) -> None:
    draft = (await admin.upload(yaml_bytes(campaign_kb()), "d12.yaml", author="mgr")).draft
    inside = DOUBLE12_START + timedelta(minutes=5)
    after = DOUBLE12_END + timedelta(hours=1)

    in_draft = await admin.try_question("双12定金可以退吗", at=inside, draft_id=draft.id)
    assert in_draft.target == "draft" and in_draft.version == draft.id
    assert in_draft.decision.candidates[0].entry_id == "d12-deposit"
    assert in_draft.decision.at == inside
    scores = [c.score for c in in_draft.decision.candidates]
    assert scores == sorted(scores, reverse=True) and len(scores) > 1

    after_draft = await admin.try_question("双12定金可以退吗", at=after, draft_id=draft.id)
    assert "d12-deposit" not in {c.entry_id for c in after_draft.decision.candidates}

    live = await admin.try_question("双12定金可以退吗", at=inside)
    assert live.target == "live" and live.version == await admin.store.live_id()
    assert "d12-deposit" not in {c.entry_id for c in live.decision.candidates}


async def test_try_a_question_against_an_old_version(admin: AdminService) -> None:
    first = await admin.store.live_id()
    assert first is not None
    review = await admin.upload(yaml_bytes(campaign_kb()), "d12.yaml", author="mgr")
    await admin.publish(review.draft.id, author="mgr")
    at = DOUBLE12_START + timedelta(hours=1)
    old = await admin.try_question("双12付了定金不想要了", at=at, version_id=first)
    new = await admin.try_question("双12付了定金不想要了", at=at)
    assert old.version == first and "d12-deposit" not in {c.entry_id for c in old.decision.candidates}
    assert new.decision.entry is not None and new.decision.entry.entry_id == "d12-deposit"
    with pytest.raises(VersionNotFound):
        await admin.try_question("x", version_id="nope")


# --- publish, gate, rollback ------------------------------------------------------------------


async def test_publish_records_author_and_answers_at_once(admin: AdminService) -> None:
    before = await admin.store.live_id()
    review = await admin.upload(yaml_bytes(campaign_kb()), "d12.yaml", author="mgr")
    result = await admin.publish(review.draft.id, author="mgr", note="double 12")

    assert not result.overridden and result.gate.passed
    assert result.version.author == "mgr" and result.version.parent == before
    assert result.version.note == "double 12"
    assert await admin.store.live_id() == result.version.id
    await admin.runtime.wait_for_version(result.version.id, timeout=2.0)
    decision = admin.runtime.service.decide("双12预售定金可以退吗", at=DOUBLE12_START)
    assert decision.kb_version == result.version.id
    assert decision.candidates[0].entry_id == "d12-deposit"
    versions = await admin.versions()
    assert versions.live == result.version.id
    assert [v.id for v in versions.versions] == [result.version.id, before]
    diff = await admin.version_diff(result.version.id)
    assert diff.base_version == before and [c.entry_id for c in diff.added] == ["d12-deposit"]


async def test_gate_refuses_a_worse_version_unless_overridden_with_a_reason(
    admin: AdminService,
) -> None:
    live_id = await admin.store.live_id()
    worse = KnowledgeBase(entries=tuple(e for e in shop_kb().entries if e.id != "points"))
    review = await admin.upload(yaml_bytes(worse), "worse.yaml", author="mgr")
    assert not review.gate.passed  # the live version's test "积分能抵现吗" loses its entry
    assert review.gate.draft_accuracy is not None and review.gate.live_accuracy is not None
    assert review.gate.draft_accuracy < review.gate.live_accuracy
    (lost,) = [q for q in review.gate.questions if q.expected == "points"]
    assert lost.live is not None and lost.live.correct and not lost.draft.correct

    with pytest.raises(GateRefused) as refused:
        await admin.publish(review.draft.id, author="mgr")
    report = refused.value.report
    assert isinstance(report, GateReport) and not report.passed
    assert report.draft_accuracy == review.gate.draft_accuracy
    with pytest.raises(GateRefused):
        await admin.publish(review.draft.id, author="mgr", override_reason="   ")
    assert await admin.store.live_id() == live_id

    result = await admin.publish(review.draft.id, author="boss", note="retire points",
                                 override_reason="积分活动下线，问题改由人工处理")
    assert result.overridden and not result.gate.passed
    assert await admin.store.live_id() == result.version.id
    assert "积分活动下线" in result.version.note
    records = await admin.audit()
    override = next(r for r in records if r.action == GATE_OVERRIDE_ACTION)
    assert override.note == "积分活动下线，问题改由人工处理"
    assert override.author == "boss" and override.version == result.version.id
    extra = override.model_dump()
    assert extra["draft_accuracy"] < extra["live_accuracy"]
    publish = next(r for r in records if r.action == "publish")
    assert publish.version == result.version.id and "积分活动下线" in publish.note


async def test_rollback_restores_the_old_answer_in_one_step(admin: AdminService) -> None:
    first = await admin.store.live_id()
    assert first is not None
    review = await admin.upload(yaml_bytes(campaign_kb()), "d12.yaml", author="mgr")
    published = await admin.publish(review.draft.id, author="mgr")
    at = DOUBLE12_START + timedelta(days=1)
    during = await admin.try_question("双12定金可以退吗", at=at)
    assert during.decision.candidates[0].entry_id == "d12-deposit"

    info = await admin.rollback(first, author="mgr", note="campaign cancelled")
    assert info.id == first
    await admin.runtime.wait_for_version(first, timeout=2.0)
    after = await admin.try_question("双12定金可以退吗", at=at)
    assert after.version == first
    assert "d12-deposit" not in {c.entry_id for c in after.decision.candidates}
    audit = await admin.audit()
    assert audit[0].action == "rollback" and audit[0].previous == published.version.id
    assert audit[0].author == "mgr" and audit[0].note == "campaign cancelled"
    with pytest.raises(VersionNotFound):
        await admin.rollback("no-such-version", author="mgr")


async def test_calendar_of_live_and_draft(admin: AdminService) -> None:
    live = await admin.calendar()
    (d11,) = live
    assert d11.campaign == "double11" and d11.status is WindowStatus.EXPIRED  # it is past 2025
    draft = (await admin.upload(yaml_bytes(campaign_kb()), "d12.yaml", author="mgr")).draft
    names = [w.campaign for w in await admin.calendar(draft_id=draft.id)]
    assert names == ["double11", "double12"]  # by start time


def test_templates_validate() -> None:
    for fmt, name in (("yaml", "t.yaml"), ("csv", "t.csv"), ("xlsx", "t.xlsx")):
        kb = load_kb_bytes(AdminService.template(fmt), name)
        assert kb.entries and kb.entries[0].campaign is not None
        assert kb.entries[0].valid_from is not None and kb.entries[0].valid_from > utcnow()


# --- every process, within 2 seconds, without failing -----------------------------------------


async def test_publish_and_rollback_reach_every_process_within_two_seconds(
    admin: AdminService, settings: KnowledgeSettings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two running processes (runtimes) share Redis; one publishes through the admin, then rolls
    back while both are still calibrating the new version (held open by a gate).

    Both answer from the new version, then from the old one, within 2 s each; decide() calls
    running all the while on both never fail and always come from one whole version; the late
    calibrations do not bring the rolled-back version back.
    """
    other = await started_runtime(settings)
    review = await admin.upload(yaml_bytes(campaign_kb()), "d12.yaml", author="mgr")
    gate = CalibrationGate(monkeypatch)  # armed after both runtimes and the review calibrated
    try:
        runtimes = (admin.runtime, other)
        first = await admin.store.live_id()
        assert first is not None
        stop = threading.Event()
        seen: list[tuple[int, str | None, bool]] = []
        errors: list[BaseException] = []
        at = DOUBLE12_START + timedelta(hours=2)

        def ask(n: int) -> None:
            while not stop.is_set():
                try:
                    d = runtimes[n].service.decide("双12定金可以退吗", at=at)
                    has = any(c.entry_id == "d12-deposit" for c in d.candidates)
                    seen.append((n, d.kb_version, has))
                except BaseException as exc:
                    errors.append(exc)
                stop.wait(0.002)  # a busy shop, not a spin loop hogging the GIL

        askers = [threading.Thread(target=ask, args=(n,)) for n in (0, 1)]
        for thread in askers:
            thread.start()
        await asyncio.sleep(0.2)

        started = time.monotonic()
        published = (await admin.publish(review.draft.id, author="mgr")).version
        await asyncio.gather(*(r.wait_for_version(published.id, timeout=2.0) for r in runtimes))
        publish_seconds = time.monotonic() - started

        await gate.reached(2)  # both runtimes are calibrating the new version, and stay so
        started = time.monotonic()
        await admin.rollback(first, author="mgr")
        await asyncio.gather(*(r.wait_for_version(first, timeout=2.0) for r in runtimes))
        rollback_seconds = time.monotonic() - started
        assert gate.calls == 2  # the rollback did not wait for, or start, a calibration
        gate.open()
        for runtime in runtimes:
            index = await runtime.settle()
            assert index is not None and index.version_id == first and not index.provisional
        await asyncio.sleep(0.1)
        stop.set()
        for thread in askers:
            await asyncio.to_thread(thread.join)

        assert not errors
        assert publish_seconds < 2.0 and rollback_seconds < 2.0
        for n in (0, 1):
            versions = [v for m, v, _ in seen if m == n]
            assert published.id in versions and versions[-1] == first
        # a whole version answers: the campaign entry exists exactly in the published one
        assert all(has == (version == published.id) for _, version, has in seen)
        print(json.dumps({"publish_s": round(publish_seconds, 3),
                          "rollback_s": round(rollback_seconds, 3), "decisions": len(seen)}))
    finally:
        gate.open()
        await other.stop()


async def test_draft_times_are_zone_aware(admin: AdminService) -> None:
    review = await admin.upload(yaml_bytes(campaign_kb()), "d12.yaml", author="mgr")
    naive = DOUBLE12_START.astimezone(CST).replace(tzinfo=None) + timedelta(minutes=1)
    result = await admin.try_question("双12定金可以退吗", at=naive, draft_id=review.draft.id)
    assert result.decision.at.utcoffset() == timedelta(hours=8)
    assert result.decision.candidates[0].entry_id == "d12-deposit"
    before = await admin.try_question("双12定金可以退吗", at=naive - timedelta(minutes=2),
                                      draft_id=review.draft.id)
    assert "d12-deposit" not in {c.entry_id for c in before.decision.candidates}


async def test_a_campaign_file_can_be_merged_into_the_live_version(admin: AdminService) -> None:
    changed_ship = shop_kb().entries[1].model_copy(update={"answer": "付款后24小时内发货。"})
    campaign_only = KnowledgeBase(entries=(D12, changed_ship), tests=(
        TestQuestion(text="双12定金能退吗", expected="d12-deposit", at=DOUBLE12_START),))
    review = await admin.upload(yaml_bytes(campaign_only), "d12.yaml", author="mgr", merge=True)

    assert review.draft.source == "merge"
    assert [c.entry_id for c in review.diff.added] == ["d12-deposit"]
    assert [c.entry_id for c in review.diff.changed] == ["ship-time"]
    assert not review.diff.removed  # merging never removes live entries
    draft = await admin.draft(review.draft.id)
    assert [e.id for e in draft.kb.entries] == [*(e.id for e in shop_kb().entries), "d12-deposit"]
    assert len(draft.kb.tests) == len(LIVE_TESTS) + 1
    whole = await admin.upload(yaml_bytes(campaign_only), "d12.yaml", author="mgr")
    assert len(whole.diff.removed) == len(shop_kb().entries) - 1  # the file as the whole KB
    assert not whole.gate.passed


async def test_impact_shows_what_else_a_campaign_file_changes(
    admin: AdminService, client: aioredis.Redis,
) -> None:
    """A campaign entry on the invoice topic stands for the evergreen invoice entry (its twin) for
    the whole window: the review shows it on a live test and on a question a shopper asked.

    (A variant that merely repeats another entry's question no longer takes that question over: a
    live campaign entry only hides its twin, see `knowledge.retrieval`.)
    """
    campaign_invoice = Entry(
        id="d12-invoice", question="双12订单怎么开发票", variants=("双十二可以开发票吗", "怎么开发票"),
        answer="双12订单的发票在活动结束后统一开具。", category=Category.AFTERSALE,
        campaign="double12", valid_from=DOUBLE12_START, valid_until=DOUBLE12_END)
    own_test = TestQuestion(text="双12发票什么时候开", expected="d12-invoice", at=DOUBLE12_START)
    conversations = ConversationStore(client)
    for conv, text in (("web:s1", "发票要怎么开"), ("web:s2", "积分能换东西吗"),
                       ("web:s3", "双12发票什么时候开")):
        await conversations.record_analysis(conv, BotAnalysis(at=utcnow(), text=text), asked=True)
    review = await admin.upload(
        yaml_bytes(KnowledgeBase(entries=(campaign_invoice,), tests=(own_test,))),
        "d12.yaml", author="mgr", merge=True)

    report = await admin.impact(review.draft.id)

    assert report.times[:2] == [DOUBLE12_START, DOUBLE12_END] and len(report.times) == 3
    # the live tests and the shopper questions, not the file's own test
    assert (report.tests, report.shopper_questions) == (3, 2)
    changed = {(r.text, r.at) for r in report.rows}
    assert ("发票怎么开", DOUBLE12_START) in changed  # a live test
    assert ("发票要怎么开", DOUBLE12_START) in changed  # a shopper's question
    assert not any(r.text == "双12发票什么时候开" for r in report.rows)  # the file's own
    assert not any(r.text == "几天能发货啊" for r in report.rows)  # asked at its own time only
    test_row = next(r for r in report.rows if r.text == "发票怎么开" and r.at == DOUBLE12_START)
    assert test_row.before is not None and test_row.before.entry_id == "invoice"
    assert test_row.after.entry_id == "d12-invoice"
    assert test_row.after.answer == campaign_invoice.answer
    assert test_row.by_draft and test_row.breaks_test and test_row.expected == "invoice"
    assert report.rows[0].breaks_test  # the worst first
    # outside the window the invoice answer is untouched
    assert not any(r.text == "发票怎么开" and r.at > DOUBLE12_END for r in report.rows)
