"""Splitting long answers for Telegram's 4096 limit (UTF-16 units), at natural boundaries."""

from __future__ import annotations

from bot.channels.formatting import split_text, utf16_len


def test_short_text_is_one_chunk_and_blank_text_none() -> None:
    assert split_text("  您好 hello  ") == ["您好 hello"]
    assert split_text(" \n ") == []


def test_cuts_prefer_paragraphs_then_sentences() -> None:
    para = "第一段。" * 10
    text = f"{para}\n\n{para}"
    assert split_text(text, limit=60) == [para, para]
    sentences = "退货请在七天内申请。运费由买家承担。质量问题我们承担运费。"
    chunks = split_text(sentences, limit=22)
    assert chunks == ["退货请在七天内申请。运费由买家承担。", "质量问题我们承担运费。"]


def test_every_chunk_fits_and_nothing_is_lost() -> None:
    text = "运费险理赔说明😀，" * 900 + "最后一句。"
    chunks = split_text(text)
    assert len(chunks) >= 2
    assert all(utf16_len(c) <= 4096 for c in chunks)
    assert "".join(chunks) == text


def test_emoji_count_double_and_are_never_split() -> None:
    text = "😀" * 10
    chunks = split_text(text, limit=5)
    assert chunks == ["😀😀", "😀😀", "😀😀", "😀😀", "😀😀"]


def test_a_long_word_is_cut_hard() -> None:
    url = "https://shop.example.com/" + "a" * 50
    chunks = split_text(url, limit=20)
    assert all(len(c) <= 20 for c in chunks) and "".join(chunks) == url
