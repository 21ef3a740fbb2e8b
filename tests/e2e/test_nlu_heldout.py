"""Rasa's intent routing on phrasings it was never trained on (tests/e2e/nlu_heldout.yml)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
import yaml

from kefu.stack import StackConfig

pytestmark = [pytest.mark.rasa, pytest.mark.redis, pytest.mark.model, pytest.mark.slow]

HELDOUT = Path(__file__).with_name("nlu_heldout.yml")
TRAINING = Path(__file__).resolve().parents[2] / "bot" / "rasa" / "data" / "nlu.yml"
MIN_ACCURACY = 0.9
SMALLTALK = {"greet", "goodbye", "thank", "affirm", "deny"}
ANNOTATION = re.compile(r"\[([^\]]+)\]\([^)]+\)")


def examples(path: Path) -> list[tuple[str, str]]:
    found = []
    for block in yaml.safe_load(path.read_text(encoding="utf-8"))["nlu"]:
        if "intent" not in block:
            continue
        for line in block["examples"].splitlines():
            if line.strip().startswith("- "):
                found.append((ANNOTATION.sub(r"\1", line.strip()[2:]), block["intent"]))
    return found


def test_heldout_examples_are_not_training_examples() -> None:
    assert not {t for t, _ in examples(HELDOUT)} & {t for t, _ in examples(TRAINING)}


def test_heldout_intents(stack: StackConfig) -> None:
    url = f"{stack.rasa_url}/model/parse"
    predicted: list[tuple[str, str, str]] = []
    with httpx.Client(timeout=30, params={"token": stack.rasa_token}) as client:
        for text, intent in examples(HELDOUT):
            result = client.post(url, json={"text": text}).raise_for_status().json()
            predicted.append((text, intent, result["intent"]["name"]))
    right = [p for p in predicted if p[1] == p[2]]
    wrong = [p for p in predicted if p[1] != p[2]]
    assert len(right) / len(predicted) >= MIN_ACCURACY, wrong
    # A shopper asking for a person or complaining never gets small talk back.
    assert not [p for p in wrong if p[1] in {"request_human", "complain"} and p[2] in SMALLTALK]
