"""Text normalisation and tokenisation for Chinese-first, mixed-language shopper questions.

`normalize` is applied to every question before anything else looks at it (the gateway, retrieval,
the lexical index): traditional characters become simplified, full-width ASCII becomes half-width,
Latin is lower-cased and whitespace collapsed, so ``「JSQ30－S3 熱水器」`` and ``jsq30-s3 热水器``
are the same text.

`tokens` feeds the lexical signal: jieba words plus character bigrams for Chinese runs (bigrams
make the signal robust to jieba's segmentation of rare product words and to typos in one
character), lower-cased words for Latin, and model numbers such as ``JSQ30-S3`` or ``AJ1`` kept
whole (and also in a compact form without separators, so ``jsq30s3`` finds ``JSQ30-S3``). Emoji
never become tokens.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from functools import lru_cache
from typing import Any

logger = logging.getLogger(__name__)

_WHITESPACE = re.compile(r"\s+")
# Emoji and pictographs, their modifiers, joiners and variation selectors.
_EMOJI = re.compile(
    "["
    "\U0001f000-\U0001faff"  # pictographs, emoticons, transport, supplemental symbols
    "\U00002600-\U000027bf"  # misc symbols, dingbats
    "\U00002b00-\U00002bff"  # arrows, stars
    "\U0001f1e6-\U0001f1ff"  # regional indicators (flags)
    "\U0000fe00-\U0000fe0f"  # variation selectors
    "\U0000200d"  # zero-width joiner
    "\U000020e3"  # combining enclosing keycap
    "]+"
)
_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# A Chinese run, or a Latin/number chunk (inner - _ . / join model-number parts).
_CHUNK = re.compile(rf"([{_CJK}]+)|([a-z0-9]+(?:[-_./][a-z0-9]+)*)")
_HAS_DIGIT = re.compile(r"\d")
_HAS_ALPHA = re.compile(r"[a-z]")
_SEPARATORS = re.compile(r"[-_./]")



def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Function words that carry no topic. Kept short on purpose: IDF handles the rest.
ZH_STOPWORDS = _wordset(
    "的 了 吗 呢 吧 啊 呀 哦 嘛 么 我 你 您 他 她 它 我们 你们 是 在 "
    "有 和 与 或 就 都 也 还 要 想 请 请问 一下 一个 这个 那个 这 那 怎么 怎样 "
    "如何 什么 可以 能 能不能 可不可以 啥 呗 哈 嗯 好 谢谢"
)
# Sentence particles: a bigram containing one ("货吗") says nothing about the topic.
_PARTICLES = frozenset("的了吗呢吧啊呀哦嘛么")
# Shop words jieba's general dictionary splits wrongly (``退|货运费``); added to it once.
SHOP_WORDS = _wordset(
    "退货 退款 换货 退换 运费 包邮 到账 发票 开票 专票 普票 优惠券 满减 定金 订金 尾款 价保 "
    "保价 花呗 分期 免息 尺码 码数 偏码 鞋码 售后 质保 保修 物流 快递 单号 签收 拒收 拒签 "
    "补货 到货 预售 现货 赠品 积分 会员 客服 人工 转人工"
)
EN_STOPWORDS = frozenset(
    (
        "a", "an", "the", "i", "me", "my", "we", "our", "you", "your", "he", "she", "it", "its",
        "they", "them", "is", "are", "was", "were", "be", "been", "am", "do", "does", "did", "to",
        "of", "in", "on", "at", "for", "from", "by", "with", "and", "or", "but", "if", "so", "can",
        "could", "would", "should", "will", "shall", "may", "might", "what", "how", "when", "where",
        "why", "which", "who", "whom", "this", "that", "these", "those", "there", "here", "please",
        "hi", "hello", "thanks", "thank", "just", "about", "any", "some", "get", "got", "have",
        "has", "had", "not", "no", "yes"
    )
)


@lru_cache(maxsize=1)
def _converter() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


@lru_cache(maxsize=1)
def _jieba() -> Any:
    import jieba

    jieba.initialize()
    for word in SHOP_WORDS:
        jieba.add_word(word, freq=100_000)
    return jieba


def strip_emoji(text: str) -> str:
    """``text`` with emoji, their modifiers and joiners replaced by a space."""
    return _EMOJI.sub(" ", text)


@lru_cache(maxsize=8192)
def normalize(text: str) -> str:
    """The canonical form of a shopper's text.

    Traditional → simplified Chinese (OpenCC ``t2s``), full-width → half-width ASCII (NFKC), Latin
    lower-cased, whitespace collapsed and trimmed. Emoji are kept (they can matter to a person
    reading the transcript) but set apart by spaces so they never glue onto a word; `tokens` and
    retrieval ignore them.
    """
    text = unicodedata.normalize("NFKC", text)
    text = _converter().convert(text)
    text = _EMOJI.sub(lambda m: f" {m.group(0)} ", text)
    return _WHITESPACE.sub(" ", text.lower()).strip()


def for_matching(text: str) -> str:
    """`normalize` without emoji: the text retrieval and the encoders see."""
    return _WHITESPACE.sub(" ", strip_emoji(normalize(text))).strip()


def is_model_number(token: str) -> bool:
    """True for a product/model code (letters and digits) such as ``jsq30-s3`` or ``aj1``."""
    return bool(_HAS_DIGIT.search(token) and _HAS_ALPHA.search(token))


def _latin_tokens(chunk: str) -> list[str]:
    if is_model_number(chunk):
        compact = _SEPARATORS.sub("", chunk)
        return [chunk] if compact == chunk else [chunk, compact]
    words = [w for w in _SEPARATORS.split(chunk) if w]
    return [w for w in words if w not in EN_STOPWORDS]


def _chinese_tokens(run: str) -> list[str]:
    if len(run) == 1:
        return [] if run in ZH_STOPWORDS else [run]
    words = [w for w in _jieba().lcut(run) if w not in ZH_STOPWORDS]
    bigrams = [run[i : i + 2] for i in range(len(run) - 1)]
    keep = [b for b in bigrams if b not in ZH_STOPWORDS and not _PARTICLES.intersection(b)]
    return words + [f"#{b}" for b in keep]


@lru_cache(maxsize=8192)
def _tokens(normalized: str) -> tuple[str, ...]:
    out: list[str] = []
    for match in _CHUNK.finditer(normalized):
        chinese, latin = match.groups()
        out.extend(_chinese_tokens(chinese) if chinese else _latin_tokens(latin))
    return tuple(out)


def tokens(text: str) -> list[str]:
    """Lexical tokens of ``text`` (normalised first).

    Chinese runs give their jieba words (stopwords dropped) plus character bigrams marked with a
    leading ``#`` so a bigram never collides with a two-character word; a one-character run gives
    itself. Latin gives lower-case words without English stopwords; a model number gives itself
    whole and, when it has separators, its compact form too. Emoji and punctuation give nothing.
    """
    return list(_tokens(for_matching(text)))


def model_numbers(text: str) -> frozenset[str]:
    """The product/model codes in ``text``, in compact form (``JSQ30-S3`` → ``jsq30s3``)."""
    return frozenset(
        _SEPARATORS.sub("", latin)
        for _, latin in (m.groups() for m in _CHUNK.finditer(for_matching(text)))
        if latin and is_model_number(latin)
    )


def codes_agree(query: frozenset[str], entry: frozenset[str]) -> float:
    """The ``code`` signal of a query's codes against an entry's.

    1 when a code of one is (part of) a code of the other (``rx7`` ~ ``frrx7``), -1 when both name
    codes and none agree, 0 when either names none.
    """
    if not query or not entry:
        return 0.0
    agree = any(q in e or e in q for q in query for e in entry)
    return 1.0 if agree else -1.0

