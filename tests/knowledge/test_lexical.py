from __future__ import annotations

import numpy as np

from knowledge.lexical import BM25

DOCS = [
    "JSQ30-S3热水器支持天然气吗",
    "JSQ50-S3热水器支持天然气吗",
    "退货运费谁承担",
    "下单后多久发货",
    "运费多少钱",
]


def test_scores_are_normalised_to_unit_interval() -> None:
    bm25 = BM25(DOCS)
    for query in ("JSQ30-S3 天然气", "运费", "今天天气怎么样", "", "😭"):
        scores = bm25.scores(query)
        assert scores.shape == (len(DOCS),)
        assert scores.dtype == np.float32
        assert float(scores.min()) >= 0.0
        assert float(scores.max()) <= 1.0


def test_model_number_picks_the_exact_product() -> None:
    scores = BM25(DOCS).scores("jsq30s3能用天然气吗")
    assert int(np.argmax(scores)) == 0
    assert scores[0] > scores[1]


def test_exact_question_scores_near_one() -> None:
    assert BM25(DOCS).scores("下单后多久发货")[3] > 0.9


def test_unseen_words_pull_the_score_down() -> None:
    bm25 = BM25(DOCS)
    on_topic = float(bm25.scores("运费")[4])
    diluted = float(bm25.scores("运费 天气 股票 彩票")[4])
    assert on_topic > 0.5
    assert diluted < on_topic / 2


def test_out_of_vocabulary_query_scores_zero() -> None:
    assert float(BM25(DOCS).scores("what's the weather").max()) == 0.0


def test_traditional_query_matches_simplified_document() -> None:
    scores = BM25(DOCS).scores("退貨運費誰承擔")
    assert int(np.argmax(scores)) == 2


def test_idf_of_unseen_token_is_the_largest() -> None:
    bm25 = BM25(DOCS)
    assert bm25.idf("never-seen") > bm25.idf("热水器")
    assert len(bm25) == len(DOCS)


def test_empty_collection() -> None:
    assert BM25([]).scores("运费").shape == (0,)
