from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from knowledge.encoders.embedding import (
    DEFAULT_MODEL,
    USE_NAME,
    Encoder,
    SentenceTransformerEncoder,
    UniversalSentenceEncoder,
    load_encoder,
    load_second_encoder,
)
from knowledge.errors import ModelNotPreparedError
from tests.helpers.e5_model import e5_encoder, e5_model_dir

# (stored question, a shopper's paraphrase); every pair is on its own topic.
PARAPHRASES = [
    ("下单后多久发货？", "什么时候能发货啊"),
    ("支持七天无理由退货吗？", "不喜欢可以退吗，七天内"),
    ("可以开发票吗？", "能給我開發票嗎"),
    ("怎么修改收货地址？", "地址填错了怎么改"),
    ("运费怎么算？", "邮费多少钱"),
    ("优惠券怎么使用？", "优惠卷在哪里用"),
    ("退款多久到账？", "钱什么时候退回来"),
    ("这件衣服有哪些尺码？", "这款有几个码"),
    ("怎么联系人工客服？", "我要找真人客服"),
    ("可以用花呗分期吗？", "支持花唄分期付款嗎"),
]


@pytest.fixture(scope="module")
def e5(tmp_path_factory: pytest.TempPathFactory) -> SentenceTransformerEncoder:
    return e5_encoder(tmp_path_factory)


@pytest.fixture(scope="module")
def use() -> UniversalSentenceEncoder:
    return UniversalSentenceEncoder()


def _check_vectors(encoder: Encoder, texts: list[str]) -> None:
    vectors = encoder.encode(texts)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(texts), encoder.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert encoder.encode([]).shape == (0, encoder.dim)


def _check_paraphrases(encoder: Encoder, min_gap: float) -> None:
    questions = encoder.encode([q for q, _ in PARAPHRASES])
    variants = encoder.encode([v for _, v in PARAPHRASES])
    similarity = variants @ questions.T
    own = np.diag(similarity)
    others = np.where(np.eye(len(PARAPHRASES), dtype=bool), -np.inf, similarity)
    for i, (question, variant) in enumerate(PARAPHRASES):
        assert own[i] > others[i].max(), (
            f"{variant!r} is closer to another question than {question!r}"
        )
    unrelated = similarity[~np.eye(len(PARAPHRASES), dtype=bool)]
    assert own.mean() - unrelated.mean() >= min_gap


@pytest.mark.model
def test_e5_vectors_are_normalised_float32(e5: SentenceTransformerEncoder) -> None:
    assert isinstance(e5, Encoder)
    assert e5.dim == 384
    assert e5.name.endswith("@query")
    _check_vectors(e5, ["你好，请问什么时候发货？", "JSQ30-S3 怎么安装", "refund 🙏"])


@pytest.mark.model
def test_e5_batches_like_single_texts(e5: SentenceTransformerEncoder) -> None:
    texts = [q for q, _ in PARAPHRASES]
    together = e5.encode(texts)
    alone = np.vstack([e5.encode([t]) for t in texts[:3]])
    np.testing.assert_allclose(together[:3], alone, atol=1e-4)


@pytest.mark.model
def test_e5_is_safe_to_share_between_threads(e5: SentenceTransformerEncoder) -> None:
    texts = [[q] for q, _ in PARAPHRASES[:6]] + [[v for _, v in PARAPHRASES]]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(e5.encode, texts))
    for batch, vectors in zip(texts, results, strict=True):
        np.testing.assert_allclose(vectors, e5.encode(batch), atol=1e-4)


@pytest.mark.model
def test_e5_ranks_chinese_paraphrases_above_unrelated_questions(
    e5: SentenceTransformerEncoder,
) -> None:
    _check_paraphrases(e5, min_gap=0.05)


@pytest.mark.model
def test_int8_e5_stays_close_to_the_float_model_under_its_own_name(
    e5: SentenceTransformerEncoder, tmp_path_factory: pytest.TempPathFactory,
) -> None:
    import torch

    int8 = load_encoder(str(e5_model_dir(tmp_path_factory)), int8=True)
    assert isinstance(int8, SentenceTransformerEncoder)
    assert int8.name == f"{e5.name}+int8"  # stored float vectors are never mixed in
    floats = [m for m in int8._model.modules() if type(m) is torch.nn.Linear]
    assert floats and all(m.in_features > m.out_features for m in floats)  # down-projections
    assert len(floats) == 12  # one per layer; the rest is int8 (fails if torch drops the API)
    _check_vectors(int8, ["你好，请问什么时候发货？", "JSQ30-S3 怎么安装", "refund 🙏"])
    texts = [t for pair in PARAPHRASES for t in pair]
    cosines = np.sum(int8.encode(texts) * e5.encode(texts), axis=1)
    assert cosines.min() > 0.98 and cosines.mean() > 0.99
    _check_paraphrases(int8, min_gap=0.05)


@pytest.mark.model  # USE ships in its package; no `make model` needed
def test_use_vectors_are_normalised_float32(use: UniversalSentenceEncoder) -> None:
    assert isinstance(use, Encoder)
    assert (use.name, use.dim) == (USE_NAME, 512)
    _check_vectors(use, ["你好，请问什么时候发货？", "JSQ30-S3 怎么安装", "refund 🙏"])


@pytest.mark.model  # USE ships in its package; no `make model` needed
def test_use_ranks_chinese_paraphrases_above_unrelated_questions(
    use: UniversalSentenceEncoder,
) -> None:
    _check_paraphrases(use, min_gap=0.2)


@pytest.mark.model  # USE ships in its package; no `make model` needed
def test_factories_build_the_use_encoder() -> None:
    assert isinstance(load_encoder(USE_NAME), UniversalSentenceEncoder)
    second = load_second_encoder()
    assert second is not None and second.name == USE_NAME


def test_missing_default_model_says_to_run_make_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotPreparedError, match="make model"):
        load_encoder(DEFAULT_MODEL)


def test_default_directory_without_a_model_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / DEFAULT_MODEL).mkdir(parents=True)
    with pytest.raises(ModelNotPreparedError, match=r"no modules\.json"):
        SentenceTransformerEncoder(DEFAULT_MODEL)


def test_missing_model_path_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ModelNotPreparedError, match="does not exist"):
        SentenceTransformerEncoder(str(tmp_path / "nowhere"))
