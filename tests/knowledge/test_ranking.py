from __future__ import annotations

import numpy as np
import pytest

from knowledge.models import Category, Entry
from knowledge.ranking import ENTRY_FEATURES, Ranker, entry_features
from knowledge.retrieval import Retriever
from tests.knowledge.fakes import HashingEncoder

ENTRIES = (
    Entry(id="fee", question="运费多少", variants=("包邮吗",), answer="满99包邮",
          category=Category.LOGISTICS),
    Entry(id="invoice", question="怎么开发票", answer="订单页申请", category=Category.AFTERSALE),
)


def test_features_stack_signals_and_mark_single_text_entries() -> None:
    r = Retriever.build(ENTRIES, HashingEncoder())
    s = r.signals(["运费"], [None])
    x = entry_features(s)
    assert x.shape == (1, 2, len(ENTRY_FEATURES))
    canon = ENTRY_FEATURES.index("canonical_answer")
    assert x[0, 0, canon] == 0.0  # has a variant
    assert x[0, 1, canon] == pytest.approx(s.answer[0, 1])


def test_logits_mask_entries_that_are_not_live_and_softmax_ignores_them() -> None:
    r = Retriever.build(ENTRIES, HashingEncoder())
    s = r.signals(["运费", "发票"], [None, None])
    s.live[1, 0] = False
    ranker = Ranker({"dense": 5.0, "lexical": 2.0})
    z = ranker.logits(s)
    assert z[1, 0] < -1e8
    p = Ranker.softmax(z)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert p[1, 0] == 0.0 and p[1, 1] == pytest.approx(1.0)
    assert p[0].argmax() == 0


def test_listwise_fit_learns_the_signal_that_picks_the_right_entry() -> None:
    rng = np.random.default_rng(0)
    n, m, f = 200, 6, len(ENTRY_FEATURES)
    x = rng.normal(size=(n, m, f)) * 0.1
    right = rng.integers(0, m, size=n)
    dense = ENTRY_FEATURES.index("dense")
    x[np.arange(n), right, dense] += 1.0  # dense separates, nothing else does
    live = np.ones((n, m), dtype=bool)
    ranker = Ranker.fit([(x, live, right), (x[:50], live[:50], np.full(50, -1))])
    w = ranker.weights
    assert w["dense"] > 5 * max(abs(v) for k, v in w.items() if k != "dense")
