from __future__ import annotations

import json

import pytest

from actions.replies import choose_payload, clarify, handing_off, ordinal
from handoff.models import HandoffReason
from kefu.language import Language
from knowledge.models import Candidate, Category


def test_choose_payload_is_rasa_intent_with_entity_json() -> None:
    payload = choose_payload("size-chart.v2")
    assert payload.startswith("/choose_option{")
    assert json.loads(payload.removeprefix("/choose_option")) == {"entry_id": "size-chart.v2"}


def test_clarify_titles_buttons_with_the_candidates_questions() -> None:
    options = [Candidate(entry_id=f"e{i}", question=f"问题{i}", matched=f"问题{i}", answer="…",
                         category=Category.PRESALE, score=0.5) for i in range(5)]
    reply = clarify(options, Language.EN)
    assert reply.text == "Which of these did you mean?"
    assert [b["title"] for b in reply.buttons] == ["问题0", "问题1", "问题2", "None of these",
                                                   "Talk to a person"]


@pytest.mark.parametrize("reason", list(HandoffReason))
def test_every_handoff_reason_has_both_languages(reason: HandoffReason) -> None:
    zh, en = handing_off(reason, Language.ZH).text, handing_off(reason, Language.EN).text
    assert "人工" in zh
    assert zh != en and en.isascii()


@pytest.mark.parametrize(("text", "expected"), [
    ("第一个", 0), ("第2个", 1), ("选第三个", 2), ("the first one", 0), ("option 2", 1),
    ("3", 2), ("Second", 1), ("就这个", None), ("第五个", None), ("123", None),
])
def test_ordinal(text: str, expected: int | None) -> None:
    assert ordinal(text) == expected
