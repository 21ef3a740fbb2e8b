"""Retrieval and the calibrated policy with the real encoders, on the Chinese dev set."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from knowledge.decision import Thresholds, calibrate, decide
from knowledge.embedding import UniversalSentenceEncoder
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
    "question", ["今天北京下雨吗", "用python写个冒泡排序", "你觉得特朗普怎么样", "who won the world cup"]
)
def test_out_of_scope_questions_are_not_answered(
    policy: tuple[Retriever, Thresholds], question: str
) -> None:
    retriever, thresholds = policy
    d = decide(question, retriever.search(question, at=AT), thresholds, AT)
    assert d.kind is not DecisionKind.ANSWER


def test_calibration_uses_the_second_encoder_and_lexical_signal(
    policy: tuple[Retriever, Thresholds],
) -> None:
    _, thresholds = policy
    assert set(thresholds.scorer.weights) >= {"dense", "second", "lexical"}
    assert thresholds.scorer.weights["dense"] > 0 and thresholds.scorer.weights["second"] > 0
    assert thresholds.clarify <= thresholds.answer
    assert thresholds.expected["oos_answered"] <= 0.05
