"""Personal data kept out of places that outlive a chat: logs and the learning-loop stream.

Shoppers type phone numbers and ID-card numbers into chats. The agent serving the ticket needs
them (the live transcript keeps them as typed), but process logs and the escalations stream the
knowledge team reads for weeks do not: there they are masked with :func:`mask`, keeping just
enough to tell two numbers apart (``138****5678``, ``1****************X``).

What counts (never inside a longer run of digits, so order numbers are left alone unless they
are shaped exactly like one of these):

- mainland mobile numbers: 11 digits ``1[3-9]…``, optionally ``+86``/``0086`` first, spaces or
  dashes in the usual 3-4-4 places;
- resident ID numbers: 18 characters (17 digits and a digit or X, with a plausible birth date),
  and the old 15-digit form.
"""

from __future__ import annotations

import logging
import re

_NOT_DIGIT_BEFORE = r"(?<![\dA-Za-z])"
_NOT_DIGIT_AFTER = r"(?![\dA-Za-z])"
_DATE = r"(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"

PHONE = re.compile(
    _NOT_DIGIT_BEFORE + r"(?:(?:\+|00)86[\s-]?)?(1[3-9]\d)[\s-]?(\d{4})[\s-]?(\d{4})"
    + _NOT_DIGIT_AFTER)
ID_NUMBER = re.compile(
    _NOT_DIGIT_BEFORE + r"([1-9])(\d{5}(?:18|19|20)\d{2}" + _DATE + r"\d{3})([\dXx])"
    + _NOT_DIGIT_AFTER)
OLD_ID_NUMBER = re.compile(
    _NOT_DIGIT_BEFORE + r"([1-9])(\d{7}" + _DATE + r"\d{2})(\d)" + _NOT_DIGIT_AFTER)


def _phone(match: re.Match[str]) -> str:
    return f"{match.group(1)}****{match.group(3)}"


def _id(match: re.Match[str]) -> str:
    return f"{match.group(1)}{'*' * len(match.group(2))}{match.group(3)}"


def mask(text: str) -> str:
    """``text`` with every phone and ID number in it masked."""
    if not any(ch.isdigit() for ch in text):
        return text
    text = ID_NUMBER.sub(_id, text)
    text = OLD_ID_NUMBER.sub(_id, text)
    return PHONE.sub(_phone, text)


class MaskingFormatter(logging.Formatter):
    """A log formatter whose every line (message, arguments, traceback) goes through :func:`mask`.

    Entry points put it on their handlers (:func:`kefu.logs.log_config`); libraries never do.
    """

    def format(self, record: logging.LogRecord) -> str:  # noqa: D102
        return mask(super().format(record))
