from __future__ import annotations

import pytest

from kefu.language import Language, detect_language, language_of


@pytest.mark.parametrize(("text", "expected"), [
    ("什么时候发货", Language.ZH),
    ("when will my order ship?", Language.EN),
    ("iPhone 15 有货吗", Language.ZH),
    ("refund 什么时候到账", Language.ZH),
    ("how do I return 退货", Language.EN),
    ("wat is the retrun policy 😅", Language.EN),
    ("發貨了嗎", Language.ZH),
    ("123456789012345678", None),
    ("👍👍", None),
    ("/feedback_helpful", None),
    ('/choose_option{"entry_id":"ship-time"}', None),
])
def test_detect_language(text: str, expected: Language | None) -> None:
    assert detect_language(text) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("en", Language.EN), ("zh", Language.ZH), (None, Language.ZH), ("fr", Language.ZH),
])
def test_language_of_slot_values(value: object, expected: Language) -> None:
    assert language_of(value) is expected
