"""A tiny deterministic encoder for tests that must not load the real model.

Texts become hashed character uni- and bigram counts, L2-normalised: texts sharing characters are
close, unrelated texts are near-orthogonal. It satisfies `knowledge.encoders.embedding.Encoder`.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence

import numpy as np


class HashingEncoder:
    """Hashed character n-gram vectors; counts calls so tests can see what was (re-)encoded."""

    def __init__(self, name: str = "fake-ngram", dim: int = 256, delay: float = 0.0) -> None:
        self._name = name
        self._dim = dim
        self.delay = delay  # seconds slept per encode call, to make builds observable
        self.encoded: list[str] = []
        self._lock = threading.Lock()
        self.gate: threading.Event | None = None  # when set by a test, encode waits for it

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self.gate is not None:
            self.gate.wait(timeout=30)
        if self.delay:
            threading.Event().wait(self.delay)
        with self._lock:
            self.encoded.extend(texts)
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            chars = "".join(text.lower().split())
            grams = list(chars) + [chars[i:i + 2] for i in range(len(chars) - 1)]
            for gram in grams or [" "]:
                digest = hashlib.blake2b(gram.encode("utf-8"), digest_size=4).digest()
                out[row, int.from_bytes(digest, "little") % self._dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)
