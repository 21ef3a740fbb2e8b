from __future__ import annotations

import time
from datetime import timedelta

from knowledge.encoders.batching import BatchingEncoder
from knowledge.models import Category, DecisionKind, Entry, KnowledgeBase
from knowledge.service import KnowledgeIndex, KnowledgeService, build_index
from knowledge.settings import KnowledgeSettings
from knowledge.text import for_matching
from tests.knowledge.conftest import CST, DOUBLE11_END, DOUBLE11_START, shop_kb
from tests.knowledge.fakes import HashingEncoder

GIFT_WRAP = Entry(id="gift-wrap", question="可以礼品包装吗", variants=("能包装成礼物吗", "gift wrapping"),
                  answer="可以，下单备注礼品包装。", category=Category.PRESALE)


def with_gift_wrap(kb: KnowledgeBase) -> KnowledgeBase:
    return KnowledgeBase(entries=(*kb.entries, GIFT_WRAP))


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
    decision = service.decide("可以开发票吗", intent="faq", intent_confidence=0.9)
    assert decision.kind is DecisionKind.ANSWER and decision.kb_version is None  # built from a file
    assert decision.candidates[0].signals["intent"] == 0.9
    entry = service.entry("invoice")
    assert entry is not None and entry.answer.startswith("可以")
    assert service.entry("nope") is None


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
