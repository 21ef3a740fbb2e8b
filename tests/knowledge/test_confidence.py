from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from knowledge.confidence import (
    FEATURES,
    MODEL_PATH,
    DecisionModel,
    Profile,
    Ranked,
    TreeEnsemble,
    _precision_above,
    coverage,
    crowding,
    features,
    load_model,
)
from knowledge.models import Entry
from knowledge.ranking import Ranker
from knowledge.retrieval import Retriever
from tests.knowledge.fakes import HashingEncoder


def _fitted(seed: int = 0) -> tuple[HistGradientBoostingClassifier, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(600, 5))
    x[rng.random(x.shape) < 0.1] = np.nan  # missing values take the learnt side
    y = ((np.nan_to_num(x[:, 0]) + 0.5 * np.nan_to_num(x[:, 1]) ** 2) > 0.3).astype(int)
    model = HistGradientBoostingClassifier(max_iter=30, max_leaf_nodes=7, random_state=0)
    return model.fit(x, y), x


def test_exported_trees_give_scikit_learns_probabilities() -> None:
    model, x = _fitted()
    ensemble = TreeEnsemble(json.loads(json.dumps(TreeEnsemble.export(model))))
    np.testing.assert_allclose(ensemble.p(x), model.predict_proba(x)[:, 1], rtol=1e-9, atol=1e-9)


def test_one_row_is_evaluated_like_a_batch() -> None:
    model, x = _fitted(1)
    ensemble = TreeEnsemble(TreeEnsemble.export(model))
    batch = ensemble.p(x[:20])
    single = np.array([ensemble.p(x[i:i + 1])[0] for i in range(20)])
    np.testing.assert_allclose(single, batch)


def test_precision_above_is_the_smoothed_share_right_at_or_above() -> None:
    ref = np.array([0.9, 0.8, 0.7, 0.2])
    right = np.array([1.0, 1.0, 0.0, 0.0])
    got = _precision_above(ref, right, np.array([0.85, 0.75, 0.1, 0.95]))
    # ≥0.85: one right of one; ≥0.75: two of two; everything: two of four; none above 0.95
    np.testing.assert_allclose(got, [(1 + 1) / (1 + 2), (2 + 1) / (2 + 2), (2 + 1) / (4 + 2),
                                     1 / 2])


def test_shipped_model_matches_the_features_it_reads() -> None:
    model = load_model()
    assert isinstance(model, DecisionModel)
    spec = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    assert tuple(spec["features"]) == FEATURES
    assert 0.0 < model.clarify <= 1.0 and 0.0 < model.answer <= 1.0
    assert set(model.ranker.weights) >= {"dense", "second", "lexical", "head_logp"}
    assert {"variants", "canonical"} <= set(model.meta["expected"])


def test_a_model_fitted_on_other_features_is_refused() -> None:
    spec = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    spec["features"] = [*spec["features"], "something-new"]
    with pytest.raises(ValueError, match="refit"):
        DecisionModel.from_spec(spec)


ENTRIES = (
    Entry(id="refund", question="退款多久到账", variants=("钱什么时候退回来",), answer="1-3个工作日",
          category="payment"),
    Entry(id="ship", question="什么时候发货", variants=("几天能发出",), answer="48小时内发货",
          category="logistics"),
    Entry(id="invoice", question="怎么开发票", answer="订单页申请电子发票", category="aftersale"),
)


def _profile(retriever: Retriever) -> Profile:
    from knowledge.calibration import profile

    return profile(retriever, Ranker({"dense": 10.0}), ["今天天气怎么样", "讲个笑话"])


def test_features_are_one_row_per_question_in_declared_order() -> None:
    retriever = Retriever.build(ENTRIES, HashingEncoder(), HashingEncoder("fake-2", 128))
    prof = _profile(retriever)
    s = retriever.signals(["退款几天到", "订单号 2026112012345 到哪了"], [None, None])
    x = features(s, Ranked.of(Ranker({"dense": 10.0}), s), prof,
                 raw_texts=["退款几天到", "订单号 2026112012345 到哪了"])
    assert x.shape == (2, len(FEATURES))
    assert x[:, FEATURES.index("order_number")].tolist() == [0.0, 1.0]
    # no entry has two texts... except two do: 4 held-out texts are fewer than 20, so undefined
    assert np.isnan(x[:, FEATURES.index("loo_p1")]).all()


def test_coverage_weighs_the_querys_words_by_idf() -> None:
    retriever = Retriever.build(ENTRIES, HashingEncoder())
    prof = _profile(retriever)
    cov, miss, novel, share = coverage("退款多久到账", prof, [0, 1])
    assert cov[0] == pytest.approx(1.0) and cov[1] < 0.5
    assert miss[0] == 0.0 and miss[1] > 0.0
    assert novel == 0.0 and share == 0.0
    _, _, novel, share = coverage("洗碗机能放吗", prof, [0])
    assert novel > 0.0 and share > 0.0  # words this knowledge base never uses


def test_crowding_is_each_entrys_closest_row_of_another_entry() -> None:
    entries = [Entry(id=f"e{i}", question=f"问题{i}号退货",
                     variants=tuple(f"变体{i}-{j}" for j in range(i % 4)), answer="a",
                     category="presale") for i in range(30)]
    r = Retriever.build(entries, HashingEncoder(), HashingEncoder("fake-2", 128))
    by_faiss = crowding(r)
    for got, matrix in zip(by_faiss, (r.primary_rows, r.second_rows), strict=True):
        assert matrix is not None
        sims = matrix @ matrix.T
        sims[r.row_entry[:, None] == r.row_entry[None, :]] = -1.0
        expected = np.full(len(entries), -1.0)
        np.maximum.at(expected, r.row_entry, sims.max(axis=1))
        np.testing.assert_allclose(got, expected, atol=1e-5)
