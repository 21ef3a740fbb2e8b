"""The shopper anger score: a logistic regression on the sentence vectors kefu already computes.

The gateway embeds every shopper message for the knowledge decision (multilingual-e5-small, the
``query:`` prompt, through the shared batching encoder). :func:`shared_embedder` asks that same
encoder for that same text, so in the gateway the vector is a cache hit or joins the pass already
under way: the anger score costs a 384-wide dot product. The weights are trained by
``python -m quality.anger_training`` on labelled Chinese and English messages
(``quality/data/anger_train.jsonl``) and measured on others never trained on
(``anger_heldout.jsonl``); the figures are in the README and in the model file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).parent / "data"
MODEL_PATH = DATA_DIR / "anger_model.json"

Embedder = Callable[[str], np.ndarray]
"""One message → its unit sentence vector."""


@dataclass(frozen=True)
class AngerModel:
    """Logistic-regression weights over one encoder's vectors."""

    encoder: str
    weights: np.ndarray
    bias: float
    threshold: float  # the score from which a message counts as angry (chosen on training folds)

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> AngerModel:
        """The model saved by the training script."""
        doc = json.loads(path.read_text(encoding="utf-8"))
        return cls(encoder=doc["encoder"], weights=np.asarray(doc["weights"], dtype=np.float32),
                   bias=float(doc["bias"]), threshold=float(doc["threshold"]))

    def score(self, vector: np.ndarray) -> float:
        """Probability that the message is angry or at risk, 0–1."""
        z = float(np.dot(self.weights, vector.astype(np.float32))) + self.bias
        return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))


class AngerScorer:
    """Scores texts: the embedder, then the model. CPU work: call it from a worker thread."""

    def __init__(self, model: AngerModel, embed: Embedder) -> None:
        self.model = model
        self._embed = embed

    def score(self, text: str) -> float:
        """The anger score of one message."""
        return self.model.score(self._embed(text))


def shared_embedder() -> Embedder:
    """The knowledge side's primary encoder on the text its retrieval embeds for a question.

    Imports the knowledge package (and torch) when called: only processes that answer shoppers
    (the gateway) and the training script call it.
    """
    from knowledge.retrieval import query_form
    from knowledge.service import shared_encoders
    from knowledge.text import normalize

    encoder = shared_encoders()[0]

    def embed(text: str) -> np.ndarray:
        vectors = np.asarray(encoder.encode([query_form(query_form(normalize(text)))]))
        vector: np.ndarray = vectors[0]
        return vector

    return embed
