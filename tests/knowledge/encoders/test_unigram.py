"""The plain-Python e5 tokenizer gives the ids ``tokenizers`` gives, and the encoder the same bits.

The reference is the ``tokenizers`` pipeline ``make model`` writes (``tokenizer.json``, loaded by
``transformers`` exactly as sentence-transformers loads it). Measured before this landed on every
line of ``../shared/eval`` and the repository's data, with 20 000 random strings: 59 511 texts, no
difference; here the shipped questions and the hard cases.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from knowledge.encoders.embedding import SentenceTransformerEncoder
from knowledge.encoders.unigram import UnigramTokenizer
from knowledge.errors import ModelNotPreparedError
from tests.helpers.e5_model import e5_model_dir

REPO = Path(__file__).resolve().parents[3]
HARD = [
    "", " ", "   ", "\t\n", "query: ", "x" * 2000, "你" * 700,
    "我的订单2026112012345到哪了？？？", "發票怎麼開", "ｈｅｌｌｏ，世界！", "①②③ ℌ ﬁ ™",
    "<s>hi</s>", "a <mask> b", "a\t\n <mask>", "<unk><pad></s>", "＜s＞", "▁x", "▁▁ ▁",
    "😀👍🏽👨‍👩‍👧 🇨🇳", "e\u0301 \u200b\u200d \x02\x7f", "ᐁᐃ ꙮ 𓀀 \U0010ffff \ue000",
    "退货  运费   谁出", "iPhone 15 Pro Max 256G 还有货吗", "WeChat: kefu_123 / 138-0013-8000",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return e5_model_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def reference(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


@pytest.fixture(scope="module")
def light(model_dir: Path) -> UnigramTokenizer:
    return UnigramTokenizer.from_file(model_dir / "tokenizer.json")


def shipped_texts() -> Iterator[str]:
    """Every non-empty line of the knowledge bases, questions and stores kefu ships."""
    for root in (REPO / "knowledge" / "data", REPO / "benchmarks" / "data"):
        for path in sorted(root.rglob("*")):
            if path.suffix in {".yaml", ".csv", ".jsonl", ".txt"}:
                for line in path.read_text(encoding="utf-8").splitlines():
                    if line.strip():
                        yield line.strip()


def random_texts(count: int) -> Iterator[str]:
    alphabet = "a Aé你好發票＜＞<s></s><mask><unk>  \t\n😀👍🏽\u0301\u200b\x02ᐁꙮ𓀀ℌﬁ①。，！？:/-_09▁"
    rng = random.Random(7)
    for _ in range(count):
        yield "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))


def test_the_ids_are_the_ids_of_tokenizers(reference: Any, light: UnigramTokenizer) -> None:
    texts = [*HARD, *shipped_texts(), *random_texts(3000)]
    assert len(texts) > 8000
    differ = [t for t in texts
              if reference(t)["input_ids"] != [light.bos_id, *light.ids(t), light.eos_id]]
    assert differ == []


def test_a_batch_is_cut_and_padded_like_the_model_input(reference: Any,
                                                         light: UnigramTokenizer) -> None:
    texts = ["query: 退货", "query: " + "很长的问题" * 300, "query: "]
    ids, mask = light.batch(texts, 512)
    expected = reference(texts, padding=True, truncation="longest_first", max_length=512)
    assert ids == expected["input_ids"] and mask == expected["attention_mask"]
    assert len(ids[1]) == 512 and ids[0][-1] == light.pad_id


def test_another_pipeline_is_refused(model_dir: Path, tmp_path: Path) -> None:
    spec = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    spec["pre_tokenizer"]["pretokenizers"][0]["prepend_scheme"] = "first"
    other = tmp_path / "tokenizer.json"
    other.write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(ModelNotPreparedError, match="not a kefu-prepared"):
        UnigramTokenizer.from_file(other)
    other.write_text("{}", encoding="utf-8")
    with pytest.raises(ModelNotPreparedError):
        UnigramTokenizer.from_file(other)


def test_the_encoder_gives_the_same_vectors_without_tokenizers(model_dir: Path) -> None:
    texts = [*HARD, *list(shipped_texts())[:80]]  # more than two batches, lengths mixed
    plain = SentenceTransformerEncoder(str(model_dir), int8=True)
    assert plain._tokenizer is not None  # the light path is the one measured
    assert len(plain._model[0].processor) < 10  # loaded with the stand-in, not 250 002 pieces
    heavy = SentenceTransformerEncoder(str(model_dir), int8=True, light_tokenizer=False)
    assert heavy._tokenizer is None and len(heavy._model[0].processor) == 250_002
    assert np.array_equal(plain.encode(texts), heavy.encode(texts))
    assert np.array_equal(plain.encode(["退货运费谁出"]), heavy.encode(["退货运费谁出"]))
    assert plain.name == heavy.name  # same vectors: stored ones stay valid


def test_a_tokenizer_of_another_shape_keeps_tokenizers(model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "e5"
    copy.mkdir()
    for item in model_dir.iterdir():
        if item.name != "tokenizer.json":
            (copy / item.name).symlink_to(item)
    spec = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    spec["pre_tokenizer"]["pretokenizers"][0]["prepend_scheme"] = "first"
    (copy / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    encoder = SentenceTransformerEncoder(str(copy))
    assert encoder._tokenizer is None and len(encoder._model[0].processor) == 250_002
    assert encoder.encode(["退货"]).shape == (1, encoder.dim)
