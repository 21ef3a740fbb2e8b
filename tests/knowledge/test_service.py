from __future__ import annotations

import time
from datetime import timedelta

from knowledge.decision import Policy
from knowledge.encoders.batching import BatchingEncoder
from knowledge.models import Category, DecisionKind, Entry, KnowledgeBase
from knowledge.service import KnowledgeIndex, KnowledgeService, build_index
from knowledge.settings import KnowledgeSettings
from knowledge.text import for_matching
from tests.knowledge.conftest import CST, DOUBLE11_END, DOUBLE11_START, fake_settings, shop_kb
from tests.knowledge.fakes import HashingEncoder

GIFT_WRAP = Entry(id="gift-wrap", question="可以礼品包装吗", variants=("能包装成礼物吗", "gift wrapping"),
                  answer="可以，下单备注礼品包装。", category=Category.PRESALE)


def with_gift_wrap(kb: KnowledgeBase) -> KnowledgeBase:
    return KnowledgeBase(entries=(*kb.entries, GIFT_WRAP))


AFTER_D11 = DOUBLE11_END + timedelta(days=2)
D12_START = DOUBLE11_START.replace(month=12, day=8, hour=20)
COUPONS = Entry(id="coupons", question="店铺优惠券有哪些", variants=("有什么优惠券", "怎么领优惠券"),
                answer="满199减10，在店铺首页领取。", category=Category.PRESALE)
D11_COUPONS = Entry(id="d11-coupons", question="双11店铺优惠券有哪些",
                    variants=("双11有什么优惠券", "双11怎么领优惠券"), answer="双11满299减30。",
                    category=Category.PRESALE, campaign="double11", valid_from=DOUBLE11_START,
                    valid_until=DOUBLE11_END)
D12_COUPONS = Entry(id="d12-coupons", question="双12优惠券有哪些", variants=("双十二有什么券", "双12领券入口"),
                    answer="双12满599减70。", category=Category.PRESALE, campaign="double12",
                    valid_from=D12_START, valid_until=D12_START + timedelta(days=4))


# --- service on a fixed index -------------------------------------------------------------------


def test_campaign_entry_answers_only_inside_its_window(shop_index: KnowledgeIndex) -> None:
    service = KnowledgeService(shop_index, settings=KnowledgeSettings())
    during = service.decide("多久发货", at=DOUBLE11_START + timedelta(days=2))
    after = service.decide("多久发货", at=DOUBLE11_END + timedelta(seconds=1))
    before = service.decide("多久发货", at=DOUBLE11_START - timedelta(seconds=1))
    assert during.kind is DecisionKind.ANSWER and during.entry is not None
    assert during.entry.entry_id == "ship-time-d11"
    for decision in (after, before):
        assert decision.entry is not None and decision.entry.entry_id == "ship-time"
        assert "ship-time-d11" not in {c.entry_id for c in decision.candidates}


def test_a_live_campaign_leaves_unrelated_questions_alone(shop_index: KnowledgeIndex) -> None:
    service = KnowledgeService(shop_index, settings=KnowledgeSettings())
    during = DOUBLE11_START + timedelta(days=2)
    for text, expected in (("可以开发票吗", "invoice"), ("积分怎么用", "points"),
                           ("怎么申请退货", "return-policy")):
        inside, outside = service.decide(text, at=during), service.decide(text, at=AFTER_D11)
        assert inside.kind is outside.kind is DecisionKind.ANSWER
        assert inside.entry is not None and outside.entry is not None
        assert inside.entry.entry_id == outside.entry.entry_id == expected


def test_each_seasons_campaign_entry_stands_for_its_evergreen_twin() -> None:
    """A store keeps last season's campaign entries beside this season's. Inside the Double 12
    window the Double 12 coupon entry must stand for the everyday one, although the Double 11
    coupon entry is worded closer to it (and is the everyday entry's nearest campaign entry)."""
    kb = KnowledgeBase(entries=(*shop_kb().entries, COUPONS, D11_COUPONS, D12_COUPONS))
    settings = fake_settings()
    service = KnowledgeService(build_index(kb, HashingEncoder(), settings=settings),
                               settings=settings)
    for at, season_entry in ((DOUBLE11_START + timedelta(days=2), "d11-coupons"),
                             (D12_START + timedelta(hours=1), "d12-coupons")):
        ranked = [c.entry_id for c in service.search("有什么优惠券", at=at, k=5)]
        assert ranked[0] == season_entry, at
        assert "coupons" not in ranked, at  # hidden by its twin of that season
    assert service.search("有什么优惠券", at=AFTER_D11, k=1)[0].entry_id == "coupons"


def test_search_respects_windows_and_k(shop_index: KnowledgeIndex) -> None:
    service = KnowledgeService(shop_index, settings=KnowledgeSettings())
    inside = service.search("双11期间多久发货", at=DOUBLE11_START, k=3)
    outside = service.search("双11期间多久发货", at=DOUBLE11_START - timedelta(days=1), k=3)
    assert len(inside) == 3 and inside[0].entry_id == "ship-time-d11"
    assert "ship-time-d11" not in {c.entry_id for c in outside}
    assert [c.score for c in inside] == sorted((c.score for c in inside), reverse=True)


def test_naive_and_missing_times_use_the_configured_zone(shop_index: KnowledgeIndex) -> None:
    service = KnowledgeService(shop_index, settings=KnowledgeSettings(timezone="Asia/Shanghai"))
    naive = DOUBLE11_START.replace(tzinfo=None)  # midnight in Shanghai = the window's first second
    assert service.decide("双11期间多久发货", at=naive).at == DOUBLE11_START
    decision = service.decide("可以退货吗")
    assert decision.at.utcoffset() == timedelta(hours=8)
    assert abs(decision.at.timestamp() - time.time()) < 5


def test_decisions_name_the_version_and_entries_resolve(shop_index: KnowledgeIndex) -> None:
    service = KnowledgeService(shop_index, settings=KnowledgeSettings())
    decision = service.decide("可以开发票吗", at=AFTER_D11, intent="faq", intent_confidence=0.9)
    assert decision.kind is DecisionKind.ANSWER and decision.kb_version is None  # built from a file
    assert decision.confidence is not None and decision.confidence >= shop_index.policy.answer
    # Rasa's intent is accepted but is no signal: the decision is the same without it
    plain = service.decide("可以开发票吗", at=AFTER_D11)
    assert (plain.kind, plain.entry, plain.confidence, plain.in_top3) == (
        decision.kind, decision.entry, decision.confidence, decision.in_top3)
    signals = decision.candidates[0].signals
    assert "intent" not in signals and {"dense", "lexical", "head"} <= set(signals)
    entry = service.entry("invoice")
    assert entry is not None and entry.answer.startswith("可以")
    assert service.entry("nope") is None


def test_settings_move_the_policys_cuts(shop_index: KnowledgeIndex) -> None:
    model = shop_index.model
    assert shop_index.policy == Policy(answer=model.answer, clarify=model.clarify)  # unset: shipped
    settings = fake_settings(answer_confidence=0.0, clarify_confidence=1.0)
    index = build_index(shop_kb(), HashingEncoder(), vectors=shop_index.vectors, settings=settings)
    assert index.policy == Policy(answer=0.0, clarify=1.0)
    decision = KnowledgeService(index, settings=settings).decide("今天天气怎么样")
    assert decision.kind is DecisionKind.ANSWER  # any confidence clears a cut at 0


def test_out_of_scope_is_handed_off(shop_index: KnowledgeIndex) -> None:
    service = KnowledgeService(shop_index, settings=KnowledgeSettings())
    decision = service.decide("今天天气怎么样")
    assert decision.kind is DecisionKind.HANDOFF and decision.entry is None


def test_empty_service_hands_everything_off() -> None:
    service = KnowledgeService(settings=KnowledgeSettings())
    decision = service.decide("可以退货吗")
    assert decision.kind is DecisionKind.HANDOFF and decision.reason == "no knowledge base is live"
    assert service.search("可以退货吗") == [] and service.version is None


def test_build_reuses_known_vectors(shop_index: KnowledgeIndex) -> None:
    encoder = HashingEncoder()
    index = build_index(with_gift_wrap(shop_kb()), encoder, vectors=shop_index.vectors)
    assert set(encoder.encoded) == {"可以礼品包装吗", "能包装成礼物吗", "gift wrapping",
                                    "可以,下单备注礼品包装。"}
    assert set(index.new_vectors["fake-ngram"]) == set(encoder.encoded)


def test_a_prefetched_question_is_not_embedded_again_by_its_decision() -> None:
    inner = HashingEncoder()
    service = KnowledgeService(build_index(shop_kb(), BatchingEncoder(inner)))
    built = len(inner.encoded)
    text = "可以退貨嗎？😊"  # traditional, full-width, emoji: prefetch normalises as decide does
    service.prefetch(text)
    decision = service.decide(text)
    assert inner.encoded[built:] == [for_matching(text)]
    assert decision.entry is not None and decision.entry.entry_id == "return-policy"


def test_zone_of_times_in_fixture() -> None:
    assert DOUBLE11_START.tzinfo == CST
