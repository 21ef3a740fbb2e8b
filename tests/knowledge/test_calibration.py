from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from knowledge.calibration import (
    CROSSWOZ_PATH,
    GENERIC_OOS_PATH,
    assess,
    fit_head,
    generic_oos,
    held_out,
    language_of,
    load_generic_oos,
    observe,
    profile,
    profile_from,
)
from knowledge.models import Category, Entry, KnowledgeBase, TestQuestion
from knowledge.ranking import Ranker
from knowledge.retrieval import Retriever
from tests.knowledge.fakes import HashingEncoder

CST = timezone(timedelta(hours=8))
START = datetime(2026, 12, 1, 20, tzinfo=CST)
RANKER = Ranker({"dense": 8.0, "lexical": 3.0, "head_logp": 5.0})


def entry(entry_id: str, question: str, *variants: str, **kw: object) -> Entry:
    fields: dict[str, object] = {"answer": f"{entry_id} 的答案", "category": Category.AFTERSALE}
    fields.update(kw)
    return Entry(id=entry_id, question=question, variants=variants, **fields)


SHOP = KnowledgeBase(
    entries=(
        entry("return", "可以退货吗", "不想要了能退吗", "七天无理由退货"),
        entry("fee", "退货运费谁出", "寄回去的运费谁付", category=Category.LOGISTICS),
        entry("invoice", "怎么开发票", "发票在哪里开", "能开专票吗"),
        entry("d12-deposit", "双12定金怎么付", "定金什么时候付", campaign="d12",
              valid_from=START, valid_until=START + timedelta(days=10),
              category=Category.PRESALE),
        entry("size", "尺码偏大吗"),
    ),
    tests=(TestQuestion(text="发票怎么弄", expected="invoice"),),
)


@pytest.fixture(scope="module")
def shop() -> Retriever:
    r = Retriever.build(SHOP.entries, HashingEncoder(), HashingEncoder("fake-2", 128))
    return r.with_head(fit_head(r))


def test_held_out_asks_each_text_of_entries_with_two_texts_then_the_tests(
    shop: Retriever,
) -> None:
    asked = held_out(shop, SHOP)
    multi = [r for r in range(len(shop.rows)) if shop.row_entry[r] != 4]  # "size" has one text
    assert asked.rows[:len(multi)].tolist() == multi
    assert asked.right[:len(multi)].tolist() == shop.row_entry[multi].tolist()
    assert asked.texts[-1] == "发票怎么弄" and asked.rows[-1] == -1 and asked.right[-1] == 2
    deposit = [i for i, r in enumerate(asked.rows) if r >= 0 and shop.row_entry[r] == 3]
    assert {asked.ats[i] for i in deposit} == {START}  # a campaign's texts inside its window


def test_held_out_samples_big_knowledge_bases(shop: Retriever) -> None:
    assert len(held_out(shop, SHOP, limit=3).rows) == 3 + 1  # three texts, then the test


def test_profile_describes_the_knowledge_base(shop: Retriever) -> None:
    prof = profile(shop, RANKER, ["今天天气怎么样", "给我讲个笑话", "推荐一本书"], SHOP)
    assert len(prof.pool_z1) == 3 and np.all(np.diff(prof.pool_z1) >= 0)  # sorted
    assert prof.texts_per_entry.tolist() == [3, 2, 3, 2, 1]
    assert prof.crowd_dense.shape == (5,) and np.all(prof.crowd_dense <= 1.0 + 1e-6)
    assert len(prof.loo_right) == 10 + 1  # every text of the four varied entries + the test
    assert set(np.unique(prof.loo_right)) <= {0.0, 1.0}
    assert not prof.has_loo  # fewer than 20 held-out questions: the model reads none
    assert "退货" in prof.docs[0] and prof.idf["退货"] < prof.max_idf


def test_without_held_out_questions_the_profile_says_so(shop: Retriever) -> None:
    prof = profile(shop, RANKER, ["今天天气怎么样"], SHOP, with_held_out=False)
    assert len(prof.loo_right) == 0 and not prof.has_loo


def test_one_observation_serves_any_ranker(shop: Retriever) -> None:
    obs = observe(shop, ["今天天气怎么样", "给我讲个笑话"], SHOP)
    a = profile_from(obs, RANKER)
    b = profile_from(obs, Ranker({"dense": 1.0}))
    np.testing.assert_allclose(a.pool_dense, b.pool_dense)  # signals: unchanged
    assert not np.allclose(a.pool_z1, b.pool_z1)  # logits: the ranker's


def test_held_out_head_opinions_come_from_heads_that_never_saw_the_text(
    shop: Retriever,
) -> None:
    obs = observe(shop, [], SHOP)
    assert obs.held_out is not None
    own = obs.held_out.head[np.arange(len(obs.held_out_right)), obs.held_out_right]
    full = shop.signals(obs.held_out.texts, [None] * len(obs.held_out.texts))
    full_own = full.head[np.arange(len(obs.held_out_right)), obs.held_out_right]
    assert own.mean() < full_own.mean()


def test_language_and_pools() -> None:
    assert language_of(SHOP) == "zh"
    english = KnowledgeBase(entries=(entry("a", "Can I return it?"), entry("b", "退货吗"),
                                     entry("c", "How long is shipping?")))
    assert language_of(english) == "en"
    generic = load_generic_oos(GENERIC_OOS_PATH)
    crosswoz = load_generic_oos(CROSSWOZ_PATH)
    assert len(crosswoz) == 300 and not any(line.startswith("#") for line in crosswoz)
    assert generic_oos("zh") == generic + crosswoz
    assert generic_oos("en") == [q for q in generic if q.isascii()] and generic_oos("en")


def test_assess_warns_about_a_sheet_without_variants(shop: Retriever) -> None:
    expected = {"canonical": {"answered_right": 0.41, "precision": 0.93},
                "variants": {"answered_right": 0.66, "precision": 0.94}}
    sheet = KnowledgeBase(entries=tuple(e.model_copy(update={"variants": ()})
                                        for e in SHOP.entries))
    found = assess(sheet, profile(shop, RANKER, [], sheet), expected)
    assert found.thin and found.with_variants == 0
    assert "5 of 5 entries have no variants" in found.advice
    assert "41%" in found.advice and "66%" in found.advice
    rich = assess(SHOP, profile(shop, RANKER, [], SHOP), expected)
    assert not rich.thin and rich.with_variants == 4 and "66%" in rich.advice
    assert rich.held_out_right is None  # too few held-out questions to quote
