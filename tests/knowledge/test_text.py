from __future__ import annotations

import pytest

from knowledge.text import for_matching, is_model_number, normalize, strip_emoji, tokens


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("退貨運費誰出", "退货运费谁出"),
        ("ＪＳＱ３０－Ｓ３熱水器", "jsq30-s3热水器"),
        ("Can I   Return\tthis?", "can i return this?"),
        ("  多久\n发货  ", "多久 发货"),
        ("發票，怎麼開？", "发票,怎么开?"),
    ],
)
def test_normalize_simplifies_widths_case_and_spaces(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_normalize_is_idempotent() -> None:
    once = normalize("請問ＡＪ１偏碼嗎？👟  謝謝")
    assert normalize(once) == once


def test_emoji_are_kept_apart_in_normalize_and_dropped_for_matching() -> None:
    assert normalize("能退吗😭谢谢") == "能退吗 😭 谢谢"
    assert for_matching("能退吗😭谢谢") == "能退吗 谢谢"
    assert for_matching("👍🏻") == ""
    assert strip_emoji("好的👌").strip() == "好的"


def test_model_numbers_are_single_tokens_with_a_compact_form() -> None:
    toks = tokens("JSQ30-S3热水器支持天然气吗")
    assert "jsq30-s3" in toks
    assert "jsq30s3" in toks
    assert "jsq30" not in toks and "s3" not in toks
    assert tokens("aj1偏码吗")[0] == "aj1"
    assert tokens("jsq30s3") == ["jsq30s3"]


def test_is_model_number() -> None:
    assert is_model_number("fr-rx7w")
    assert is_model_number("aj1")
    assert not is_model_number("return")
    assert not is_model_number("42")


def test_chinese_gets_words_and_marked_bigrams_without_stopwords() -> None:
    toks = tokens("退货运费谁承担")
    assert "退货" in toks and "运费" in toks and "承担" in toks
    assert "#货运" in toks  # bigrams cross word boundaries, so a bad segmentation still matches
    assert all(t not in toks for t in ("的", "吗"))
    assert tokens("怎么退货吗") == tokens("退货")  # stopwords contribute nothing


def test_traditional_and_simplified_give_the_same_tokens() -> None:
    assert tokens("退貨郵費誰出") == tokens("退货邮费谁出")


def test_short_and_single_character_queries_keep_their_content() -> None:
    assert tokens("运费") == ["运费", "#运费"]
    assert tokens("贵") == ["贵"]


def test_latin_words_lose_english_stopwords() -> None:
    assert tokens("Can I return my AJ1 sneakers?") == ["return", "aj1", "sneakers"]


def test_mixed_text_tokens_in_order() -> None:
    toks = tokens("refund多久到账")
    assert toks[0] == "refund"
    assert "到账" in toks


def test_emoji_and_punctuation_give_no_tokens() -> None:
    assert tokens("😭😭！！？？") == []


def test_model_numbers_in_compact_form() -> None:
    from knowledge.text import model_numbers

    assert model_numbers("疾速 C3 碳板跑鞋（JS-C3）") == {"c3", "jsc3"}
    assert model_numbers("ＡＪ１偏码吗") == {"aj1"}
    assert model_numbers("运费多少 42码") == frozenset()


def test_codes_agree() -> None:
    from knowledge.text import codes_agree

    assert codes_agree(frozenset({"rx7"}), frozenset({"frrx7"})) == 1.0
    assert codes_agree(frozenset({"jsc3"}), frozenset({"jt3"})) == -1.0
    assert codes_agree(frozenset(), frozenset({"jt3"})) == 0.0
    assert codes_agree(frozenset({"jt3"}), frozenset()) == 0.0
