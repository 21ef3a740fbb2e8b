"""Order numbers as shoppers type them, found in any message.

Shoppers paste order numbers the way their shop app shows them: 10 to 20 digits, often grouped
with spaces or dashes ("2026 1120 1234 5", "2026-11201-2345"), or an ``E`` id
("E2026011512345678"), and usually inside a sentence ("我的订单 2026112012345 到哪了"). The bot
(the Rasa actions) and the handoff (messages typed while a person owns the chat) both keep what
they find with :func:`find_order_number`, so an agent sees the number however it was written.

Pure Python: the Rasa NLU data carries the same shape as a regex feature (``bot/rasa/data``),
which only helps Rasa pick the ``give_order_number`` intent.
"""

from __future__ import annotations

import re

MIN_DIGITS = 10
MAX_DIGITS = 20

_SEP = r"[ \-\u2010-\u2015]"  # a space, a dash, or a typographic dash
_DIGITS = re.compile(rf"(?<![0-9A-Za-z])[0-9](?:{_SEP}?[0-9]){{{MIN_DIGITS - 1},{MAX_DIGITS - 1}}}"
                     r"(?![0-9])")
_E_ID = re.compile(rf"(?<![0-9A-Za-z])[Ee]{_SEP}?20[0-9]{{2}}(?:{_SEP}?[0-9]){{6,14}}(?![0-9])")
_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")  # an 11-digit Chinese mobile number, not an order
_DATE = re.compile(r"^(?:19|20)[0-9]{2}[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12][0-9]|3[01])\b")


def normalise(raw: str) -> str:
    """The order number without separators, ``E`` upper-cased (``e-2026 01…``: ``E202601…``)."""
    return re.sub(_SEP, "", raw.strip()).upper()


def find_order_number(text: str) -> str | None:
    """The first order number in ``text``, normalised, or ``None``.

    ``E`` ids win over plain digits; a run that is a mobile number or starts with a date
    ("2026-11-20 12:30") is not an order number.
    """
    match = _E_ID.search(text)
    if match is not None:
        return normalise(match.group())
    for found in _DIGITS.finditer(text):
        raw = found.group()
        digits = normalise(raw)
        if _MOBILE.match(digits) or _DATE.match(text[found.start():]):
            continue
        return digits
    return None
