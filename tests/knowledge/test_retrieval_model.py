"""Retrieval and the calibrated policy with the real encoders, on the Chinese dev set."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from knowledge.calibration import calibrate
from knowledge.decision import Thresholds, decide
from knowledge.encoders.embedding import UniversalSentenceEncoder
from knowledge.models import DecisionKind, Entry, KnowledgeBase
from knowledge.retrieval import Retriever
from tests.helpers.e5_model import e5_encoder

pytestmark = pytest.mark.model

AT = datetime(2026, 10, 1, 12, tzinfo=timezone(timedelta(hours=8)))
DEV = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "zh_faq.yaml"


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Retriever, Thresholds]:
    data = yaml.safe_load(DEV.read_text(encoding="utf-8"))
    entries = tuple(
        Entry(id=e["id"], question=e["question"], variants=tuple(e["variants"]),
              answer=e["answer"], category=e["category"])
        for e in data["entries"]
    )
    kb = KnowledgeBase(entries=entries)
    retriever = Retriever.build(entries, e5_encoder(tmp_path_factory),
                                UniversalSentenceEncoder(threads=1))
    thresholds = calibrate(retriever, kb)
    return retriever.with_scorer(thresholds.scorer), thresholds


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("运费", "shipping-fee"),  # two characters
        ("包邮不", "shipping-fee"),
        ("退貨郵費誰出", "return-shipping-fee"),  # traditional
        ("jsq30s3 天然气能用吗", "water-heater-gas"),  # model number without its hyphen
        ("refund多久到账", "refund-time"),  # mixed
        ("能發順豐嗎", "shipping-courier"),
    ],
)
def test_held_out_questions_find_their_entry(
    policy: tuple[Retriever, Thresholds], question: str, expected: str
) -> None:
    retriever, thresholds = policy
    candidates = retriever.search(question, at=AT)
    assert candidates[0].entry_id == expected
    d = decide(question, candidates, thresholds, AT)
    assert d.kind is not DecisionKind.HANDOFF
    if d.kind is DecisionKind.CLARIFY:
        assert expected in [o.entry_id for o in d.options]


@pytest.mark.parametrize(
    "question", ["用python写个冒泡排序", "你觉得特朗普怎么样", "who won the world cup"]
)
def test_out_of_scope_questions_are_not_answered(
    policy: tuple[Retriever, Thresholds], question: str
) -> None:
    retriever, thresholds = policy
    d = decide(question, retriever.search(question, at=AT), thresholds, AT)
    assert d.kind is not DecisionKind.ANSWER


def test_held_out_dev_set_is_answered_directly_and_oos_handed_off(
    policy: tuple[Retriever, Thresholds],
) -> None:
    """The calibrated policy on the dev set's held-out paraphrases and its own OOS questions.

    Measured 0.634 answered right, precision 0.93, clarify 0.17, OOS handed off 0.90 (3 of 60
    answered: within the 5% wrong-answer target, e.g. 今天北京下雨吗 → delivery-time); the old
    utility-search policy answered 0.53 and clarified 0.27 (benchmarks/results/retrieval.md).
    """
    retriever, thresholds = policy
    data = yaml.safe_load(DEV.read_text(encoding="utf-8"))
    asked = [(q, e["id"]) for e in data["entries"] for q in e["heldout"]]
    asked += [(q, None) for q in data["oos"]]
    kinds: dict[str, list[tuple[DecisionKind, bool]]] = {"in": [], "oos": []}
    for question, expected in asked:
        d = decide(question, retriever.search(question, at=AT), thresholds, AT)
        right = d.entry is not None and d.entry.entry_id == expected
        kinds["in" if expected else "oos"].append((d.kind, right))
    ins, oos = kinds["in"], kinds["oos"]
    answered = [right for kind, right in ins + oos if kind is DecisionKind.ANSWER]
    assert sum(right for kind, right in ins if kind is DecisionKind.ANSWER) >= 0.58 * len(ins)
    assert sum(answered) >= 0.9 * len(answered)
    assert sum(kind is DecisionKind.CLARIFY for kind, _ in ins + oos) <= 0.22 * len(ins + oos)
    assert sum(kind is DecisionKind.HANDOFF for kind, _ in oos) >= 0.85 * len(oos)
    assert sum(kind is DecisionKind.ANSWER for kind, _ in oos) <= 0.07 * len(oos)


def test_calibration_uses_the_second_encoder_and_lexical_signal(
    policy: tuple[Retriever, Thresholds],
) -> None:
    _, thresholds = policy
    assert set(thresholds.scorer.weights) >= {"dense", "second", "lexical"}
    assert thresholds.scorer.weights["dense"] > 0 and thresholds.scorer.weights["second"] > 0
    assert thresholds.clarify <= thresholds.answer
    assert thresholds.confidence is not None and thresholds.confidence.lead > 0
    assert thresholds.expected["oos_answered"] <= 0.05
    assert thresholds.expected["in_scope_answered_wrong"] <= 0.06
