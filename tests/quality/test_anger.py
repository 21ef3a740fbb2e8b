"""The anger model on the real encoder: the held-out figures the README quotes hold."""

from __future__ import annotations

import json

import numpy as np
import pytest

from quality.anger import MODEL_PATH, AngerModel, AngerScorer, shared_embedder
from quality.anger_training import HELDOUT, TRAIN, evaluate, load, measure

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def scorer() -> AngerScorer:
    return AngerScorer(AngerModel.load(), shared_embedder())


def test_heldout_figures_match_the_model_file(scorer: AngerScorer) -> None:
    recorded = json.loads(MODEL_PATH.read_text(encoding="utf-8"))["heldout"]
    measured = evaluate(scorer.model, load(HELDOUT), shared_embedder())
    assert measured == recorded
    assert measured["all"]["precision"] >= 0.9 and measured["all"]["recall"] >= 0.9  # type: ignore[index]


def test_heldout_never_overlaps_training() -> None:
    assert not {e.text for e in load(TRAIN)} & {e.text for e in load(HELDOUT)}


@pytest.mark.parametrize(("text", "angry"), [
    ("你们这是在耍我吧，东西到现在都没发！", True),
    ("I'm fed up, nobody ever replies to me", True),
    ("请问这款有白色的吗", False),
    ("Thanks, the parcel arrived today", False),
])
def test_unseen_messages(scorer: AngerScorer, text: str, angry: bool) -> None:
    assert (scorer.score(text) >= scorer.model.threshold) is angry


def test_measure_on_a_hand_computed_case() -> None:
    labels = np.array([True, True, False, False])
    scores = np.array([0.9, 0.3, 0.8, 0.1])  # one hit, one miss, one false alarm
    got = measure(labels, scores, 0.5)
    assert (got.precision, got.recall, got.f1) == (0.5, 0.5, 0.5)
