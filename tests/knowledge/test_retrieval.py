from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from knowledge.models import Category, Entry
from knowledge.retrieval import Retriever, Scorer, encode_cached
from knowledge.text import for_matching
from tests.knowledge.fakes import HashingEncoder

CST = timezone(timedelta(hours=8))
BEFORE = datetime(2026, 10, 20, 12, tzinfo=CST)
DURING = datetime(2026, 11, 5, 12, tzinfo=CST)
AFTER = datetime(2026, 11, 20, 12, tzinfo=CST)
START = datetime(2026, 11, 1, tzinfo=CST)
END = datetime(2026, 11, 11, 23, 59, 59, tzinfo=CST)
# A fixed combination so logic tests do not depend on calibration.
SCORER = Scorer(weights={"dense": 6.0, "lexical": 4.0}, bias=-6.0)


def entry(entry_id: str, question: str, *variants: str, **kw: object) -> Entry:
    fields: dict[str, object] = {"answer": f"{entry_id} 的答案", "category": Category.PRESALE}
    fields.update(kw)
    return Entry(id=entry_id, question=question, variants=variants, **fields)


ENTRIES = [
    entry("ship-time", "下单后多久发货", "什么时候发货", "几天能发货", category=Category.LOGISTICS),
    entry("ship-time-d11", "双11期间多久发货", "双十一什么时候发货", "大促几天发货",
          category=Category.LOGISTICS, campaign="double11", valid_from=START, valid_until=END),
    entry("jsq30", "JSQ30-S3热水器支持天然气吗", "JSQ30-S3用什么气源", category=Category.PRODUCT),
    entry("jsq50", "JSQ50-S3热水器支持天然气吗", "JSQ50-S3用什么气源", category=Category.PRODUCT),
    entry("shipping-fee", "运费多少", "包邮吗", "满多少包邮", category=Category.LOGISTICS),
    entry("invoice", "可以开发票吗", "怎么开电子发票", category=Category.AFTERSALE),
    entry("old-promo", "国庆满减活动怎么参加", "国庆优惠", valid_until=datetime(2026, 10, 8, tzinfo=CST)),
]


@pytest.fixture(scope="module")
def retriever() -> Retriever:
    # Hashed n-grams are far less similar than e5 vectors: twins start lower.
    return Retriever.build(ENTRIES, HashingEncoder(), scorer=SCORER, topic_similarity=0.75)


def ids(candidates: list) -> list[str]:  # type: ignore[type-arg]
    return [c.entry_id for c in candidates]


def test_candidates_carry_scores_in_unit_interval_and_signals(retriever: Retriever) -> None:
    candidates = retriever.search("可以开发票吗", at=BEFORE, k=3)
    assert ids(candidates)[0] == "invoice"
    assert len(candidates) == 3
    assert [c.score for c in candidates] == sorted((c.score for c in candidates), reverse=True)
    for c in candidates:
        assert 0.0 <= c.score <= 1.0
        assert {"dense", "lexical", "answer", "intent"} <= set(c.signals)
    top = candidates[0]
    assert top.matched == "可以开发票吗"
    assert top.signals["dense"] == pytest.approx(1.0, abs=1e-5)
    assert top.answer == "invoice 的答案" and top.category is Category.AFTERSALE


def test_only_entries_active_at_the_time_are_candidates(retriever: Retriever) -> None:
    early = datetime(2026, 10, 2, tzinfo=CST)
    assert ids(retriever.search("国庆满减活动怎么参加", at=early))[0] == "old-promo"
    assert "old-promo" not in ids(retriever.search("国庆满减活动怎么参加", at=BEFORE, k=10))
    for at in (BEFORE, AFTER):
        assert "ship-time-d11" not in ids(retriever.search("双11期间多久发货", at=at, k=10))


def test_window_bounds_are_inclusive(retriever: Retriever) -> None:
    for at in (START, END):
        assert "ship-time-d11" in ids(retriever.search("双11期间多久发货", at=at, k=10))


def test_inside_the_window_the_campaign_entry_wins_over_the_evergreen(retriever: Retriever) -> None:
    outside = retriever.search("什么时候发货", at=BEFORE, k=5)
    assert ids(outside)[0] == "ship-time"
    inside = retriever.search("什么时候发货", at=DURING, k=5)
    assert ids(inside)[0] == "ship-time-d11"
    assert "ship-time" not in ids(inside)  # shadowed: no clarify between two versions of one answer
    assert inside[0].score >= outside[0].score  # takes the evergreen's place and score
    assert inside[0].signals["campaign"] == 1.0
    assert ids(retriever.search("什么时候发货", at=AFTER, k=5))[0] == "ship-time"


def test_campaign_does_not_shadow_unrelated_entries(retriever: Retriever) -> None:
    assert retriever.shadows[1] == frozenset({0})  # ship-time-d11 twins ship-time only
    inside = retriever.search("运费多少", at=DURING, k=5)
    assert ids(inside)[0] == "shipping-fee"  # same category, other topic: untouched
    assert "shipping-fee" in ids(retriever.search("双11期间多久发货", at=DURING, k=7))


def test_twins_need_the_same_category() -> None:
    entries = [
        entry("gift", "买鞋送什么赠品", "有赠品吗", category=Category.PRESALE),
        entry("gift-d11", "买鞋送什么赠品", "双11赠品", campaign="d11", valid_from=START,
              valid_until=END, category=Category.PRESALE),
        entry("gift-other", "买鞋送什么赠品呢", category=Category.PRODUCT),
    ]
    r = Retriever.build(entries, HashingEncoder(), scorer=SCORER, campaign_margin=0.0)
    assert r.shadows == {1: frozenset({0})}
    # Even a query that favours the evergreen's own variant is answered by the campaign entry.
    inside = r.search("有赠品吗", at=DURING)
    assert ids(inside)[0] == "gift-d11" and "gift" not in ids(inside)


def test_a_campaign_entry_matching_almost_as_well_wins_for_that_query() -> None:
    entries = [
        entry("ship", "多久发货", category=Category.LOGISTICS),
        entry("ship-d11", "多久能发货呢", campaign="d11", valid_from=START, valid_until=END,
              category=Category.PRESALE),  # another category: not a twin
    ]
    query = "多久发货"
    strict = Retriever.build(entries, HashingEncoder(), scorer=SCORER, campaign_margin=0.0)
    assert ids(strict.search(query, at=DURING)) == ["ship", "ship-d11"]
    gap = 1.0 - strict.search(query, at=DURING)[1].signals["dense"]
    loose = Retriever.build(entries, HashingEncoder(), scorer=SCORER, campaign_margin=gap + 0.01)
    assert ids(loose.search(query, at=DURING)) == ["ship-d11"]
    assert ids(loose.search(query, at=AFTER)) == ["ship"]


def test_model_numbers_are_told_apart_by_the_lexical_signal(retriever: Retriever) -> None:
    for query, expected, other in (("jsq50s3 天然气能用吗", "jsq50", "jsq30"),
                                   ("JSQ30-S3用液化气行吗", "jsq30", "jsq50")):
        candidates = retriever.search(query, at=BEFORE)
        assert ids(candidates)[0] == expected
        by_id = {c.entry_id: c for c in candidates}
        assert by_id[expected].signals["lexical"] > by_id[other].signals["lexical"]


def test_code_signal_marks_agreeing_and_clashing_products(retriever: Retriever) -> None:
    by_id = {c.entry_id: c for c in retriever.search("jsq50s3 天然气", at=BEFORE, k=7)}
    assert by_id["jsq50"].signals["code"] == 1.0
    assert by_id["jsq30"].signals["code"] == -1.0
    assert all(c.signals["code"] == 0.0 for c in retriever.search("运费", at=BEFORE))


def test_traditional_and_full_width_queries_match(retriever: Retriever) -> None:
    assert ids(retriever.search("可以開發票嗎？", at=BEFORE))[0] == "invoice"
    assert ids(retriever.search("ＪＳＱ５０－Ｓ３熱水器", at=BEFORE))[0] == "jsq50"


def test_short_chinese_query(retriever: Retriever) -> None:
    candidates = retriever.search("运费", at=BEFORE)
    assert ids(candidates)[0] == "shipping-fee"
    assert candidates[0].signals["lexical"] > 0.5


def test_excluded_texts_leave_the_index_for_that_query(retriever: Retriever) -> None:
    full = retriever.search("可以开发票吗", at=BEFORE)[0]
    held_out = retriever.search("可以开发票吗", at=BEFORE, exclude_texts=["可以開發票嗎"])
    assert held_out[0].entry_id == "invoice"
    assert held_out[0].matched == "怎么开电子发票"
    assert held_out[0].signals["dense"] < full.signals["dense"]
    everything = [t for e in ENTRIES for t in e.texts]
    assert retriever.search("可以开发票吗", at=BEFORE, exclude_texts=everything) == []


def test_intent_confidence_is_recorded_for_question_intents(retriever: Retriever) -> None:
    asked = retriever.search("运费", at=BEFORE, intent="faq", intent_confidence=0.8)
    assert asked[0].signals["intent"] == pytest.approx(0.8)
    chit = retriever.search("运费", at=BEFORE, intent="greet", intent_confidence=0.9)
    assert chit[0].signals["intent"] == 0.0
    assert chit[0].score == asked[0].score  # unweighted until a scorer gives it a weight


def test_precomputed_vectors_are_not_encoded_again() -> None:
    first_encoder = HashingEncoder()
    first = Retriever.build(ENTRIES, first_encoder)
    cache = first.new_vectors
    assert set(cache[first_encoder.name]) == set(Retriever.texts_of(ENTRIES))
    second_encoder = HashingEncoder()
    extra = entry("new", "新问题在这里")
    again = Retriever.build([*ENTRIES, extra], second_encoder, vectors=cache)
    assert set(second_encoder.encoded) == {for_matching("新问题在这里"), for_matching(extra.answer)}
    assert set(again.new_vectors[second_encoder.name]) == set(second_encoder.encoded)


def test_query_vectors_can_be_passed_in(retriever: Retriever) -> None:
    vectors = retriever.encode_query("包邮吗")
    assert set(vectors) == {"fake-ngram"}
    assert retriever.search("包邮吗", at=BEFORE, query_vectors=vectors) == retriever.search(
        "包邮吗", at=BEFORE
    )


def test_second_encoder_adds_its_signal() -> None:
    r = Retriever.build(ENTRIES, HashingEncoder(), HashingEncoder(name="other", dim=128))
    assert r.has_second
    top = r.search("包邮吗", at=BEFORE)[0]
    assert top.entry_id == "shipping-fee"
    assert top.signals["second"] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("query", ["JSQ30-S3 用天然气吗", "包邮吗", "多久发货", "weather"])
def test_signals_are_each_entrys_best_over_its_texts_left_in(query: str) -> None:
    first, second = HashingEncoder(), HashingEncoder(name="other", dim=128)
    r = Retriever.build(ENTRIES, first, second, scorer=SCORER)
    out = ["JSQ30-S3用什么气源", "包邮吗"]
    left = {e.id: [t for t in dict.fromkeys(for_matching(x) for x in e.texts)
                   if t not in {for_matching(o) for o in out}] for e in ENTRIES}
    q = for_matching(query)
    scored = r.score_all(query, at=None, exclude_texts=out)
    assert scored
    for s in scored:
        texts = left[s.entry.id]
        cos1 = first.encode([q])[0] @ first.encode(texts).T
        cos2 = second.encode([q])[0] @ second.encode(texts).T
        assert s.signals["dense"] == pytest.approx(float(cos1.max()), abs=1e-5)
        assert s.signals["second"] == pytest.approx(float(cos2.max()), abs=1e-5)
        assert for_matching(s.matched) == texts[int(np.argmax(cos1))]
        assert s.score == pytest.approx(SCORER.score(s.signals))
        assert s.signals["code"] in (-1.0, 0.0, 1.0)


def test_encode_cached_mixes_known_and_new() -> None:
    enc = HashingEncoder()
    known = {"a": np.ones(enc.dim, dtype=np.float32)}
    matrix, fresh = encode_cached(enc, ["a", "b", "b"], known)
    assert enc.encoded == ["b"]
    assert set(fresh) == {"b"}
    assert matrix.shape == (3, enc.dim)
    assert np.array_equal(matrix[0], known["a"]) and np.array_equal(matrix[1], matrix[2])


def test_scorer_is_a_logistic_of_weighted_signals() -> None:
    scorer = Scorer(weights={"dense": 2.0, "lexical": 1.0}, bias=-1.0)
    assert scorer.score({"dense": 0.5, "lexical": 0.0}) == pytest.approx(0.5)
    assert scorer.score({"dense": 1.0, "lexical": 1.0, "second": 9.0}) == pytest.approx(
        1 / (1 + np.exp(-2.0))
    )
    assert 0.0 < scorer.score({"dense": -1e9}) < 1e-20


def test_empty_knowledge_base() -> None:
    from knowledge.calibration import calibrate
    from knowledge.decision import decide
    from knowledge.models import DecisionKind, KnowledgeBase

    r = Retriever.build([], HashingEncoder())
    assert r.search("运费", at=BEFORE) == []
    th = calibrate(r, KnowledgeBase(entries=()), ["今天天气怎么样"])
    assert decide("运费", [], th, BEFORE).kind is DecisionKind.HANDOFF
