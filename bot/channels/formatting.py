"""Text shaping for channels with limits: split long answers where a reader would pause.

Telegram measures message length in UTF-16 code units (an emoji counts two) and refuses more
than 4096; kefu sends plain text (no parse mode), so nothing a shopper, an agent or the
knowledge base writes can be misread as markup and nothing needs escaping.
"""

from __future__ import annotations

import re

TELEGRAM_TEXT_LIMIT = 4096

# Preferred cut points, best first: paragraph, line, sentence end, clause, space.
_BREAKS = (
    re.compile(r"\n\s*\n"),
    re.compile(r"\n"),
    re.compile(r"[。！？!?…]+[”’\"')）]*|[.;；](?=\s)"),
    re.compile(r"[，,、：:]"),
    re.compile(r"\s"),
)


def utf16_len(text: str) -> int:
    """Length as Telegram counts it."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """Cut ``text`` into chunks of at most ``limit`` UTF-16 units, at natural boundaries.

    A boundary is used only if it keeps at least half the chunk; otherwise the chunk is cut
    hard at the limit (a very long word or URL). Whitespace at the cuts is dropped; an empty or
    blank text gives no chunks.
    """
    chunks: list[str] = []
    rest = text.strip()
    while rest:
        if utf16_len(rest) <= limit:
            chunks.append(rest)
            break
        head = _prefix_within(rest, limit)
        cut = max(1, _best_cut(head))
        chunk, rest = rest[:cut].rstrip(), rest[cut:].lstrip()
        if chunk:
            chunks.append(chunk)
    return chunks


def _prefix_within(text: str, limit: int) -> str:
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return text[:index]
    return text


def _best_cut(head: str) -> int:
    floor = len(head) // 2
    for pattern in _BREAKS:
        ends = [m.end() for m in pattern.finditer(head) if m.end() > floor]
        if ends:
            return ends[-1]
    return len(head)
