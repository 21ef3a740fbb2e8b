from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from knowledge.head import EntryHead
from knowledge.models import Category, Entry
from knowledge.retrieval import Retriever, encode_cached, find_twins
from knowledge.text import for_matching
from tests.knowledge.fakes import HashingEncoder

CST = timezone(timedelta(hours=8))
BEFORE = datetime(2026, 10, 20, 12, tzinfo=CST)
DURING = datetime(2026, 11, 5, 12, tzinfo=CST)
AFTER = datetime(2026, 11, 20, 12, tzinfo=CST)
START = datetime(2026, 11, 1, tzinfo=CST)
END = datetime(2026, 11, 11, 23, 59, 59, tzinfo=CST)


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
    entry("d11-gift", "双11买热水器送什么赠品", "双十一赠品有哪些", campaign="double11",
          valid_from=START, valid_until=END),
]


@pytest.fixture(scope="module")
def retriever() -> Retriever:
    # Hashed n-grams are far less alike than e5 vectors: twins start lower.
    return Retriever.build(ENTRIES, HashingEncoder(), HashingEncoder("fake-2", 128),
                           twin_similarity=0.5)


def at(r: Retriever, text: str, when: datetime | None) -> dict[str, bool]:
    s = r.signals([text], [when])
    return {e.id: bool(s.live[0, i]) for i, e in enumerate(r.entries)}


def test_only_entries_active_at_the_time_are_live(retriever: Retriever) -> None:
    assert not at(retriever, "运费", AFTER)["old-promo"]
    assert at(retriever, "运费", datetime(2026, 10, 1, tzinfo=CST))["old-promo"]
    assert not at(retriever, "运费", BEFORE)["ship-time-d11"]


def test_window_bounds_are_inclusive(retriever: Retriever) -> None:
    assert at(retriever, "运费", START)["ship-time-d11"]
    assert at(retriever, "运费", END)["ship-time-d11"]


def test_inside_the_window_a_campaign_entry_hides_only_its_twin(retriever: Retriever) -> None:
    assert retriever.twins[1] == frozenset({0})  # ship-time-d11 stands for ship-time
    assert retriever.twins[7] == frozenset()  # the gift entry has no evergreen twin
    live = at(retriever, "什么时候发货", DURING)
    assert live["ship-time-d11"] and not live["ship-time"]
    assert live["shipping-fee"] and live["invoice"] and live["jsq30"]  # nothing else hidden
    assert at(retriever, "什么时候发货", AFTER)["ship-time"]


def test_a_live_campaign_changes_no_signal_of_another_entry(retriever: Retriever) -> None:
    # the Double 11 gift entry is live: the invoice question's signals stay as they were
    before = retriever.signals(["怎么开发票"], [BEFORE])
    during = retriever.signals(["怎么开发票"], [DURING])
    invoice = 5
    for name in ("dense", "second", "lexical", "answer", "cent_dense", "code"):
        assert getattr(before, name)[0, invoice] == getattr(during, name)[0, invoice]


def test_twins_are_mutual_nearest_of_one_category() -> None:
    entries = [
        entry("gift", "买鞋送什么赠品", "有赠品吗", category=Category.PRESALE),
        entry("gift-d11", "买鞋送什么赠品", "双11赠品", campaign="d11", valid_from=START,
              valid_until=END, category=Category.PRESALE),
        entry("gift-d11-other", "买鞋送什么赠品", "双11送啥", campaign="d11b", valid_from=START,
              valid_until=END, category=Category.PRODUCT),
    ]
    r = Retriever.build(entries, HashingEncoder(), twin_similarity=0.5)
    assert r.twins == {1: frozenset({0}), 2: frozenset()}  # other category: never a twin
    vectors = r.centroids("primary")
    assert find_twins(entries, vectors, vectors, similarity=1.01) == {1: frozenset(),
                                                                       2: frozenset()}


def test_signals_are_each_entrys_best_over_its_texts() -> None:
    first, second = HashingEncoder(), HashingEncoder(name="other", dim=128)
    r = Retriever.build(ENTRIES, first, second)
    query = "JSQ30-S3 用天然气吗"
    s = r.signals([query], [None])
    q = for_matching(query)
    for i, e in enumerate(ENTRIES):
        texts = list(dict.fromkeys(for_matching(t) for t in e.texts))
        cos1 = first.encode([q])[0] @ first.encode(texts).T
        cos2 = second.encode([q])[0] @ second.encode(texts).T
        assert s.dense[0, i] == pytest.approx(float(cos1.max()), abs=1e-5)
        assert s.second[0, i] == pytest.approx(float(cos2.max()), abs=1e-5)
        assert for_matching(r.matched(s, 0, i)) == texts[int(np.argmax(cos1))]
    assert s.code[0, 2] == 1.0 and s.code[0, 3] == -1.0 and s.code[0, 4] == 0.0


def test_an_excluded_row_leaves_the_index_for_that_query_only() -> None:
    r = Retriever.build(ENTRIES, HashingEncoder())
    row = r.rows.index(for_matching("包邮吗"))
    s = r.signals(["包邮吗", "包邮吗"], [None, None], exclude_rows=[row, -1])
    fee = 4
    assert s.dense[1, fee] == pytest.approx(1.0, abs=1e-5)
    assert s.dense[0, fee] < 0.99  # only its other texts are left
    assert s.cent_dense[0, fee] < s.cent_dense[1, fee]  # its mean vector without that text


def test_the_head_signal_is_renormalised_over_live_entries() -> None:
    r = Retriever.build(ENTRIES, HashingEncoder())
    head = EntryHead.fit(r.primary_rows, r.primary_rows, r.row_entry, len(ENTRIES))
    s = r.with_head(head).signals(["多久发货"], [BEFORE])
    assert s.head[0].sum() == pytest.approx(1.0)
    assert s.head[0, 1] == 0.0 and s.head[0, 6] == 0.0  # d11 not live yet, old-promo expired
    assert s.head[0, 0] > 0.0


def test_single_text_entries_are_marked_canonical() -> None:
    entries = [entry("a", "怎么退货"), entry("b", "怎么开发票", "发票怎么开")]
    assert Retriever.build(entries, HashingEncoder()).canonical.tolist() == [1.0, 0.0]


def test_precomputed_vectors_are_not_encoded_again() -> None:
    enc = HashingEncoder()
    first = Retriever.build(ENTRIES, enc)
    vectors = {enc.name: first.new_vectors[enc.name]}
    again = HashingEncoder()
    Retriever.build(ENTRIES, again, vectors=vectors)
    assert again.encoded == []


def test_query_vectors_can_be_passed_in(retriever: Retriever) -> None:
    vectors = retriever.encode_queries(["包邮吗"])
    a = retriever.signals(["包邮吗"], [None], query_vectors=vectors)
    b = retriever.signals(["包邮吗"], [None])
    np.testing.assert_allclose(a.dense, b.dense)


def test_big_batches_equal_small_ones(retriever: Retriever) -> None:
    texts = [f"第{i}个问题 多久发货" for i in range(300)]  # more than one chunk of queries
    whole = retriever.signals(texts, [DURING] * 300)
    part = retriever.signals(texts[290:], [DURING] * 10)
    np.testing.assert_allclose(whole.dense[290:], part.dense)
    assert whole.take([295]).texts == [part.texts[5]]


def test_encode_cached_mixes_known_and_new() -> None:
    enc = HashingEncoder()
    known = {"a": np.ones(enc.dim, dtype=np.float32)}
    matrix, fresh = encode_cached(enc, ["a", "b", "b"], known)
    assert enc.encoded == ["b"]
    assert set(fresh) == {"b"}
    assert matrix.shape == (3, enc.dim)
    assert np.array_equal(matrix[0], known["a"]) and np.array_equal(matrix[1], matrix[2])


def test_empty_knowledge_base() -> None:
    r = Retriever.build([], HashingEncoder())
    s = r.signals(["运费"], [BEFORE])
    assert s.dense.shape == (1, 0) and not s.live.any()
