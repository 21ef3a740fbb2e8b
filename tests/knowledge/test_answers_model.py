"""The answer decision with the real encoders and the shipped model: the failure modes of #9.

Quality figures come from benchmarks/generalisation.py on knowledge bases held out of fitting;
these tests pin the behaviours that were broken: a live campaign stealing unrelated questions, an
expired campaign entry's questions passed to its neighbour, order lookups and products not sold
answered, a plain Q&A sheet clarifying almost everything, a large knowledge base handing off the
questions it ranks right.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from knowledge.encoders.embedding import UniversalSentenceEncoder
from knowledge.loader import load_kb
from knowledge.models import Category, DecisionKind, Entry, KnowledgeBase
from knowledge.service import KnowledgeService, build_index
from tests.helpers.e5_model import e5_encoder

pytestmark = pytest.mark.model

CST = timezone(timedelta(hours=8))
DATA = Path(__file__).resolve().parents[2] / "knowledge" / "data"
SLICE = Path(__file__).resolve().parent / "data" / "clinc_slice.json"
STORES = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "stores"
OUTSIDE = datetime(2026, 10, 1, 12, tzinfo=CST)  # no campaign of the demo store is live
D12_START = datetime(2026, 12, 1, 20, tzinfo=CST)
INSIDE = datetime(2026, 12, 5, 12, tzinfo=CST)
AFTER_COUPONS = datetime(2026, 12, 20, 12, tzinfo=CST)  # coupons expired, price protection live

# A campaign file as a knowledge manager writes one: topics the demo store has evergreen answers
# for (coupons, price protection) and ones it has not (a gift).
D12 = (
    Entry(id="d12-coupons", question="双12店铺优惠券怎么领？",
          variants=("双十二的券在哪领", "12.12有什么优惠券"),
          answer="双12 店铺券 12 月 1 日 20:00 起在店铺首页领取：满 299 减 30、满 599 减 70。",
          category=Category.PRESALE, campaign="d12", valid_from=D12_START,
          valid_until=datetime(2026, 12, 12, 23, 59, 59, tzinfo=CST)),
    Entry(id="d12-price-protect", question="双12前买的能保价吗？",
          variants=("双十二降价了能补差价吗", "12.12价保到什么时候"),
          answer="12 月 1 日后下单的订单保价至 12 月 31 日，降价可申请补差。",
          category=Category.PAYMENT, campaign="d12", valid_from=D12_START,
          valid_until=datetime(2026, 12, 31, 23, 59, 59, tzinfo=CST)),
    Entry(id="d12-gift", question="双12买鞋送什么赠品？", variants=("双十二有赠品吗", "12.12送什么"),
          answer="双12 期间实付满 500 元送运动水壶一个，送完即止。",
          category=Category.PRESALE, campaign="d12", valid_from=D12_START,
          valid_until=datetime(2026, 12, 12, 23, 59, 59, tzinfo=CST)),
)


def _service(kb: KnowledgeBase, tmp_path_factory: pytest.TempPathFactory) -> KnowledgeService:
    index = build_index(kb, e5_encoder(tmp_path_factory), UniversalSentenceEncoder(threads=1))
    return KnowledgeService(index)


@pytest.fixture(scope="module")
def demo() -> KnowledgeBase:
    return load_kb(DATA / "demo_store.yaml")


@pytest.fixture(scope="module")
def with_d12(demo: KnowledgeBase, tmp_path_factory: pytest.TempPathFactory) -> KnowledgeService:
    return _service(KnowledgeBase(entries=(*demo.entries, *D12)), tmp_path_factory)


def _demo_questions() -> list[dict[str, str | None]]:
    lines = (DATA / "demo_questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_a_live_campaign_answers_unrelated_questions_as_without_it(
    with_d12: KnowledgeService,
) -> None:
    """Evergreen questions that no D12 entry is about: the campaign may not take them over."""
    twins = {c.entry_id for c in (with_d12.search("双12前买的能保价吗", at=INSIDE, k=1))}
    assert twins == {"d12-price-protect"}
    questions = [q for q in _demo_questions() if q["expected"] and "at" not in q
                 and not str(q["expected"]).startswith(("d11-", "cny-", "en-double"))]
    assert len(questions) > 100
    taken, right_outside, right_inside = [], 0, 0
    for q in questions:
        text, expected = str(q["text"]), q["expected"]
        outside = with_d12.decide(text, at=OUTSIDE)
        inside = with_d12.decide(text, at=INSIDE)
        right_outside += outside.entry is not None and outside.entry.entry_id == expected
        right_inside += inside.entry is not None and inside.entry.entry_id == expected
        if inside.entry is not None and inside.entry.entry_id == "d12-gift":
            taken.append(text)
    assert taken == []  # the gift entry has no evergreen twin: it wins no other topic
    assert right_inside >= right_outside - 2  # no worse while the campaign is live


@pytest.mark.parametrize(("store", "live", "oos_handed_off"), [
    ("furniture", datetime(2026, 11, 5, 21, tzinfo=CST), 0.75),  # Double 11 live
    ("baby", datetime(2026, 6, 10, 15, tzinfo=CST), 0.7),  # 618 live
])
def test_a_live_campaign_of_another_store_takes_no_unrelated_questions(
    store: str, live: datetime, oos_handed_off: float, tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Stores written apart from the scorer, asked while their campaign is live.

    Before the twin rule a live campaign entry answered 30 (furniture) and 15 (baby) questions
    about other topics, out-of-scope ones included ("y7睡了40天了 还能退吗" got the Double 11
    deposit refund); now 5 and 0. Their out-of-scope lines, half of them next to a topic the store
    answers, are handed off (furniture: 55 % before, 85 % in the held-out benchmark).
    """
    kb = load_kb(STORES / store / "kb.yaml")
    campaign = {e.id for e in kb.entries if e.campaign}
    service = _service(kb, tmp_path_factory)
    lines = (STORES / store / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    asked = [json.loads(line) for line in lines if line.strip()]
    asked = [q for q in asked if "at" not in q]
    taken, oos, handed_off = [], 0, 0
    for q in asked:
        d = service.decide(str(q["text"]), at=live)
        if q["expected"] is None:
            oos += 1
            handed_off += d.kind is DecisionKind.HANDOFF
        if (d.kind is DecisionKind.ANSWER and d.entry is not None
                and d.entry.entry_id in campaign and d.entry.entry_id != q["expected"]):
            taken.append((q["text"], d.entry.entry_id))
    assert len(asked) > 150
    assert len(taken) <= 0.04 * len(asked), taken
    assert handed_off >= oos_handed_off * oos


def test_an_expired_campaign_entry_does_not_hand_its_questions_to_a_neighbour(
    with_d12: KnowledgeService,
) -> None:
    d = with_d12.decide("双十二的优惠券在哪领？", at=AFTER_COUPONS)
    assert d.entry is None or d.entry.entry_id != "d12-price-protect"
    live = with_d12.decide("双十二的优惠券在哪领？", at=INSIDE)
    assert live.kind is DecisionKind.ANSWER and live.entry is not None
    assert live.entry.entry_id == "d12-coupons"


@pytest.mark.parametrize("text", [
    "我的订单 2026112012345 到哪了",
    "帮我查下订单尾号6632发货没",
    "你们卖冰箱吗",
    "今天北京下雨吗",
])
def test_lookups_and_products_not_sold_are_not_answered(
    with_d12: KnowledgeService, text: str,
) -> None:
    assert with_d12.decide(text, at=OUTSIDE).kind is not DecisionKind.ANSWER


def test_a_plain_sheet_answers_and_does_not_clarify_everything(
    demo: KnowledgeBase, tmp_path_factory: pytest.TempPathFactory,
) -> None:
    sheet = KnowledgeBase(entries=tuple(e.model_copy(update={"variants": ()})
                                        for e in demo.entries))
    service = _service(sheet, tmp_path_factory)
    kinds = {k: 0 for k in DecisionKind}
    right = answers = 0
    for q in _demo_questions():
        at = datetime.fromisoformat(str(q["at"])) if q.get("at") else OUTSIDE
        d = service.decide(str(q["text"]), at=at)
        kinds[d.kind] += 1
        if d.kind is DecisionKind.ANSWER:
            answers += 1
            right += d.entry is not None and d.entry.entry_id == q["expected"]
    total = sum(kinds.values())
    assert kinds[DecisionKind.CLARIFY] / total <= 0.3  # was 87% on a 671-question sheet
    assert kinds[DecisionKind.ANSWER] / total >= 0.2 and right / answers >= 0.8


def test_a_large_plain_sheet_written_apart_from_the_scorer_answers_instead_of_clarifying(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The 140-entry bank FAQ of benchmarks/data/stores without its variants (a Q&A sheet).

    Before: 55 % clarified, 27 % answered right at once, 67 % of answers right.
    """
    kb = load_kb(STORES / "bank_faq" / "kb.yaml")
    sheet = KnowledgeBase(entries=tuple(e.model_copy(update={"variants": ()}) for e in kb.entries))
    service = _service(sheet, tmp_path_factory)
    lines = (STORES / "bank_faq" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    asked = [json.loads(line) for line in lines if line.strip()]
    at = datetime(2026, 12, 1, 10, tzinfo=CST)
    clarified = answered = right = in_scope = 0
    for q in asked:
        d = service.decide(str(q["text"]), at=datetime.fromisoformat(q["at"]) if "at" in q else at)
        clarified += d.kind is DecisionKind.CLARIFY
        if d.kind is DecisionKind.ANSWER:
            answered += 1
            right += d.entry is not None and d.entry.entry_id == q["expected"]
        in_scope += q["expected"] is not None
    assert clarified <= 0.3 * len(asked)
    assert right >= 0.35 * in_scope and right >= 0.8 * answered


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("运费", "shipping-fee"),  # two characters
        ("退貨郵費誰出", "return-shipping-fee"),  # traditional
        ("refund多久到账", "refund-timing"),  # mixed
        ("鞋子偏码吗", "shoe-fit"),
    ],
)
def test_short_mixed_and_traditional_questions_find_their_entry(
    with_d12: KnowledgeService, question: str, expected: str,
) -> None:
    best = with_d12.search(question, at=OUTSIDE, k=3)
    assert expected in [c.entry_id for c in best]


def test_a_large_knowledge_base_answers_what_it_ranks_right(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The 150 CLINC150 intents with 20 texts each: many close entries, many variants each.

    Per-KB calibration on such variants set the answer cut at 0.976 (the whole CLINC150 train) and
    handed off 80 % of the questions whose right entry ranked first; the decision may not be that
    shy on a large KB, nor answer the out-of-scope questions instead.
    """
    data = json.loads(SLICE.read_text(encoding="utf-8"))
    kb = KnowledgeBase(entries=tuple(
        Entry(id=intent.replace("_", "-"), question=texts[0], variants=tuple(texts[1:]),
              answer=f"About {intent.replace('_', ' ')}.", category=Category.PRODUCT)
        for intent, texts in data["train"].items()))
    assert len(kb.entries) == 150 and sum(1 + len(e.variants) for e in kb.entries) == 3000
    service = _service(kb, tmp_path_factory)
    ranked_right = answered = wrong = 0
    for text, intent in data["val"]:
        expected = intent.replace("_", "-")
        top = service.search(text, at=OUTSIDE, k=1)
        decision = service.decide(text, at=OUTSIDE)
        if top and top[0].entry_id == expected:
            ranked_right += 1
            answered += decision.kind is DecisionKind.ANSWER
        if decision.kind is DecisionKind.ANSWER:
            wrong += decision.entry is not None and decision.entry.entry_id != expected
    assert ranked_right >= 0.8 * len(data["val"])
    assert answered >= 0.85 * ranked_right  # 50 of 255 before this decision, 256 of 272 with it
    assert wrong <= 0.05 * len(data["val"])
    handed_off = sum(service.decide(text, at=OUTSIDE).kind is DecisionKind.HANDOFF
                     for text in data["oos"])
    assert handed_off >= 0.65 * len(data["oos"])
