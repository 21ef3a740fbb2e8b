from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from knowledge.decision import (
    GENERIC_OOS_PATH,
    Thresholds,
    _Outcomes,
    _search,
    calibrate,
    choose,
    collect,
    decide,
    fit_scorer,
    load_generic_oos,
    utility,
)
from knowledge.models import Candidate, Category, DecisionKind, Entry, KnowledgeBase
from knowledge.retrieval import DEFAULT_SCORER, Retriever
from tests.knowledge.fakes import HashingEncoder

AT = datetime(2026, 10, 1, 12, tzinfo=timezone(timedelta(hours=8)))
T = Thresholds(answer=0.8, clarify=0.5, margin=0.1)


def cand(entry_id: str, score: float) -> Candidate:
    return Candidate(entry_id=entry_id, question=f"{entry_id}?", matched=f"{entry_id}?",
                     answer=f"{entry_id}!", category=Category.PRESALE, score=score,
                     signals={"dense": score})


def test_answer_when_confident_and_clearly_ahead() -> None:
    d = decide("运费多少", [cand("b", 0.3), cand("a", 0.95)], T, AT, kb_version="v1")
    assert d.kind is DecisionKind.ANSWER
    assert d.entry is not None and d.entry.entry_id == "a"
    assert [c.entry_id for c in d.candidates] == ["a", "b"]  # ranked
    assert d.options == [] and d.kb_version == "v1" and d.at == AT and d.text == "运费多少"
    assert "0.950" in d.reason


def test_clarify_when_two_candidates_are_too_close() -> None:
    d = decide("q", [cand("a", 0.9), cand("b", 0.85), cand("c", 0.2)], T, AT)
    assert d.kind is DecisionKind.CLARIFY
    assert [o.entry_id for o in d.options] == ["a", "b"]
    assert d.entry is None
    assert "lead too small" in d.reason


def test_clarify_between_thresholds_offers_up_to_three_options() -> None:
    scores = [0.7, 0.65, 0.6, 0.55, 0.1]
    d = decide("q", [cand(f"e{i}", s) for i, s in enumerate(scores)], T, AT)
    assert d.kind is DecisionKind.CLARIFY
    assert [o.entry_id for o in d.options] == ["e0", "e1", "e2"]


def test_clarify_pads_to_two_options() -> None:
    d = decide("q", [cand("a", 0.6), cand("b", 0.1)], T, AT)
    assert d.kind is DecisionKind.CLARIFY
    assert [o.entry_id for o in d.options] == ["a", "b"]
    lone = decide("q", [cand("a", 0.6)], T, AT)
    assert lone.kind is DecisionKind.CLARIFY and len(lone.options) == 1


def test_handoff_when_nothing_is_good_enough() -> None:
    d = decide("今天天气怎么样", [cand("a", 0.4), cand("b", 0.3)], T, AT)
    assert d.kind is DecisionKind.HANDOFF
    assert d.entry is None and d.options == []
    assert len(d.candidates) == 2


def test_handoff_without_candidates() -> None:
    d = decide("q", [], T, AT)
    assert d.kind is DecisionKind.HANDOFF
    assert d.reason == "no active entry matched"


def test_a_lone_confident_candidate_is_answered() -> None:
    assert decide("q", [cand("a", 0.85)], T, AT).kind is DecisionKind.ANSWER


def _random_outcomes(rng: random.Random, n: int) -> tuple[_Outcomes, list[list[float]], list[int]]:
    rows, ranks = [], []
    for _ in range(n):
        scores = sorted((rng.random() for _ in range(4)), reverse=True)
        rows.append(scores)
        ranks.append(rng.choice([0, 1, 2, 3, 99]))
    s = np.array(rows)
    rank = np.array(ranks)
    s_true = np.array([row[r] if r < 4 else 0.0 for row, r in zip(rows, ranks, strict=True)])
    in_scope = rank != 99
    return _Outcomes(s[:, 0], s[:, 1], s[:, 2], rank, s_true, in_scope), rows, ranks


def test_vectorised_utility_mirrors_decide() -> None:
    rng = random.Random(3)
    outcomes, rows, ranks = _random_outcomes(rng, 300)
    for answer, clarify, margin in ((0.8, 0.5, 0.1), (0.6, 0.6, 0.0), (0.9, 0.3, 0.2)):
        th = Thresholds(answer=answer, clarify=clarify, margin=margin)
        value_in, value_oos, n_in, n_oos = 0.0, 0.0, 0, 0
        for row, rank in zip(rows, ranks, strict=True):
            candidates = [cand(f"e{i}", s) for i, s in enumerate(row)]
            d = decide("q", candidates, th, AT)
            if rank == 99:
                n_oos += 1
                value_oos += {"answer": -1.0, "clarify": 0.0, "handoff": 1.0}[d.kind]
                continue
            n_in += 1
            right = f"e{rank}"
            if d.kind is DecisionKind.ANSWER:
                value_in += 1.0 if d.entry and d.entry.entry_id == right else -1.0
            elif d.kind is DecisionKind.CLARIFY and right in [o.entry_id for o in d.options]:
                value_in += 0.5
        expected = (value_in / n_in + value_oos / n_oos) / 2
        assert utility(outcomes, answer, clarify, margin)[0] == pytest.approx(expected)


def test_threshold_search_cuts_between_the_two_distributions() -> None:
    rng = np.random.default_rng(0)
    n_in, n_oos = 200, 150
    s1_in = rng.uniform(0.7, 0.9, n_in)
    s1_oos = rng.uniform(0.1, 0.3, n_oos)
    outcomes = _Outcomes(
        s1=np.concatenate([s1_in, s1_oos]),
        s2=np.concatenate([s1_in - 0.5, s1_oos - 0.05]).clip(0),
        s3=np.zeros(n_in + n_oos),
        rank=np.concatenate([np.zeros(n_in, dtype=int), np.full(n_oos, 99)]),
        s_true=np.concatenate([s1_in, np.zeros(n_oos)]),
        in_scope=np.concatenate([np.ones(n_in, bool), np.zeros(n_oos, bool)]),
    )
    answer, clarify, _, rates = _search(outcomes, 1.0, 0.5)
    assert 0.3 < answer <= 0.7
    assert clarify <= answer
    assert rates["in_scope_answered_right"] == 1.0
    assert rates["oos_handoff"] == 1.0


def test_threshold_search_prefers_clarify_where_the_top_is_often_wrong() -> None:
    # In-scope queries whose right entry is second half the time, OOS far below: clarify wins.
    n = 100
    s1 = np.full(n, 0.8)
    outcomes = _Outcomes(
        s1=np.concatenate([s1, np.full(n, 0.2)]),
        s2=np.concatenate([np.full(n, 0.79), np.full(n, 0.1)]),
        s3=np.zeros(2 * n),
        rank=np.concatenate([np.arange(n) % 2, np.full(n, 99)]),
        s_true=np.concatenate([np.where(np.arange(n) % 2, 0.79, 0.8), np.zeros(n)]),
        in_scope=np.concatenate([np.ones(n, bool), np.zeros(n, bool)]),
    )
    answer, clarify, _, rates = _search(outcomes, 1.0, 0.5)
    assert 0.2 < clarify <= 0.8 < answer
    assert rates["in_scope_clarified"] == 1.0
    assert rates["oos_handoff"] == 1.0


SHOP = KnowledgeBase(entries=(
    Entry(id="return", question="支持七天无理由退货吗", answer="支持。", category=Category.AFTERSALE,
          variants=("不喜欢可以退货吗", "收到货能退货吗", "七天无理由退货怎么算")),
    Entry(id="ship", question="下单后多久发货", answer="48小时内。", category=Category.LOGISTICS,
          variants=("什么时候发货", "付款后几天发货", "多久能发货")),
    Entry(id="invoice", question="可以开发票吗", answer="可以。", category=Category.AFTERSALE,
          variants=("怎么开发票", "能开电子发票吗", "发票怎么申请")),
    Entry(id="fee", question="运费多少钱", answer="满99包邮。", category=Category.LOGISTICS,
          variants=("包邮吗", "运费怎么算", "满多少包邮")),
    Entry(id="points", question="会员积分怎么用", answer="100积分抵1元。", category=Category.ACCOUNT,
          variants=("积分可以抵现吗", "积分怎么兑换", "会员积分有什么用")),
))


@pytest.fixture(scope="module")
def shop() -> Retriever:
    return Retriever.build(SHOP.entries, HashingEncoder())


def test_calibration_separates_own_variants_from_generic_oos(shop: Retriever) -> None:
    oos = load_generic_oos()
    th = calibrate(shop, SHOP, oos)
    assert th.in_scope_queries == 20 and th.oos_queries == len(oos)
    assert "leave-one-out" in th.method
    assert th.scorer != DEFAULT_SCORER and th.scorer.weights["lexical"] > 0
    assert 0.0 < th.clarify <= th.answer < 1.0
    queries = collect(shop, SHOP, oos)
    tops = {True: [], False: []}  # type: dict[bool, list[float]]
    for q in queries:
        scores = sorted((th.scorer.score(s.signals) for s in q.pool), reverse=True)
        tops[q.expected is not None].append(scores[0] if scores else 0.0)
    # The cut lies between the bulk of OOS and the bulk of in-scope top scores.
    assert np.quantile(tops[False], 0.9) < th.answer
    assert np.quantile(tops[True], 0.25) >= th.clarify
    assert th.expected["oos_answered"] <= 0.05
    assert th.expected["in_scope_answered_right"] >= 0.5


def test_calibrated_policy_decides_sensibly(shop: Retriever) -> None:
    th = calibrate(shop, SHOP)
    r = shop.with_scorer(th.scorer)

    def kind(text: str) -> DecisionKind:
        return decide(text, r.search(text, at=AT), th, AT).kind

    assert kind("包邮吗") is DecisionKind.ANSWER
    assert kind("会员积分怎么用") is DecisionKind.ANSWER
    assert kind("帮我写一首诗") is DecisionKind.HANDOFF
    assert kind("what's the weather like today") is DecisionKind.HANDOFF


def test_without_variants_thresholds_come_from_oos_only() -> None:
    bare = KnowledgeBase(entries=tuple(e.model_copy(update={"variants": ()}) for e in SHOP.entries))
    r = Retriever.build(bare.entries, HashingEncoder())
    th = calibrate(r, bare, ["今天天气怎么样", "讲个笑话", "股票会涨吗", "你是谁"])
    assert th.in_scope_queries == 0
    assert "no entry has variants" in th.method
    assert th.scorer == DEFAULT_SCORER
    assert th.expected["oos_answered"] <= 0.25


def test_fit_scorer_weights_the_separating_signal(shop: Retriever) -> None:
    queries = collect(shop, SHOP, ["今天天气怎么样", "讲个笑话"])
    scorer = fit_scorer(queries, ["dense", "lexical"])
    assert scorer.weights["dense"] > 0
    assert "right" in scorer.fitted_on


def test_choose_counts_options() -> None:
    assert choose([], T) == (DecisionKind.HANDOFF, 0)
    assert choose([0.9, 0.1], T) == (DecisionKind.ANSWER, 1)
    assert choose([0.7, 0.6, 0.55, 0.52], T) == (DecisionKind.CLARIFY, 3)
    assert choose([0.4], T) == (DecisionKind.HANDOFF, 0)


def test_generic_oos_list() -> None:
    questions = load_generic_oos()
    assert len(questions) >= 140
    assert len(set(questions)) == len(questions)
    assert any(q.isascii() for q in questions) and any(not q.isascii() for q in questions)
    assert GENERIC_OOS_PATH.read_text(encoding="utf-8").endswith("\n")
