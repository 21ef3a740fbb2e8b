"""Which language to answer in: Chinese unless the shopper wrote mostly Latin letters.

Pure Python on purpose: Rasa's NLU component (`bot.rasa.components.LanguageExtractor`, in the
Rasa venv) and the custom actions (the kefu venv) both import it.
"""

from __future__ import annotations

from enum import StrEnum

HANZI_WEIGHT = 3
"""One Chinese character carries about as much as three Latin letters (a short English word)."""


class Language(StrEnum):
    """Languages the bot answers in."""

    ZH = "zh"  # simplified Chinese (the default)
    EN = "en"  # English


def _is_hanzi(char: str) -> bool:
    code = ord(char)
    return 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF


def _is_latin(char: str) -> bool:
    return char.isascii() and char.isalpha()


def detect_language(text: str) -> Language | None:
    """The language of ``text``, or ``None`` when it has no letters (digits, emoji, a payload).

    Mixed text counts each Chinese character as :data:`HANZI_WEIGHT` Latin letters, so
    "iPhone 15 有货吗" is Chinese and "how do I return 退货" is English.
    """
    if text.startswith("/"):
        return None
    hanzi = sum(1 for c in text if _is_hanzi(c))
    latin = sum(1 for c in text if _is_latin(c))
    if hanzi == 0 and latin == 0:
        return None
    return Language.EN if latin > hanzi * HANZI_WEIGHT else Language.ZH


def language_of(value: object) -> Language:
    """A slot or profile value as a :class:`Language` (Chinese when unknown)."""
    return Language.EN if value == Language.EN.value else Language.ZH
