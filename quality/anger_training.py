"""Train the shopper anger model and measure it: ``python -m quality.anger_training``.

Embeds the labelled messages of ``quality/data/anger_train.jsonl`` with the gateway's encoder
(:func:`quality.anger.shared_embedder`), fits a logistic regression (scikit-learn, already a
dependency of sentence-transformers), picks the threshold with the best F1 on 5-fold
cross-validated scores of the training set, then scores ``anger_heldout.jsonl`` (never seen in
training) and writes weights, threshold and the held-out precision/recall to
``quality/data/anger_model.json``. ``--measure`` only scores the held-out set with the saved model.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quality.anger import DATA_DIR, MODEL_PATH, AngerModel, Embedder, shared_embedder

TRAIN = DATA_DIR / "anger_train.jsonl"
HELDOUT = DATA_DIR / "anger_heldout.jsonl"


@dataclass(frozen=True)
class Example:
    """One labelled message."""

    text: str
    angry: bool
    lang: str


@dataclass(frozen=True)
class Scores:
    """Precision, recall and F1 of the "angry" class at a threshold."""

    precision: float
    recall: float
    f1: float
    n: int

    def as_dict(self) -> dict[str, float]:
        """Rounded, for the model file and the README."""
        return {"precision": round(self.precision, 3), "recall": round(self.recall, 3),
                "f1": round(self.f1, 3), "n": self.n}


def load(path: Path) -> list[Example]:
    """The labelled messages of a JSON-lines file."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [Example(r["text"], bool(r["angry"]), r["lang"]) for r in rows]


def measure(labels: np.ndarray, scores: np.ndarray, threshold: float) -> Scores:
    """Precision and recall of ``scores >= threshold`` against ``labels``."""
    predicted = scores >= threshold
    tp = int(np.sum(predicted & labels))
    fp = int(np.sum(predicted & ~labels))
    fn = int(np.sum(~predicted & labels))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(precision, recall, f1, len(labels))


def best_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The threshold with the best F1 (ties: the higher threshold, fewer false alerts)."""
    candidates = np.round(np.arange(0.2, 0.91, 0.05), 2)
    return float(max(candidates, key=lambda t: (measure(labels, scores, t).f1, t)))


def train(examples: list[Example], embed: Embedder) -> AngerModel:
    """Fit the regression and choose its threshold on cross-validated scores."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    x = np.stack([embed(e.text) for e in examples])
    y = np.array([e.angry for e in examples])
    regression = LogisticRegression(C=4.0, max_iter=2000, class_weight="balanced")
    folds = cross_val_predict(regression, x, y, cv=5, method="predict_proba")[:, 1]
    regression.fit(x, y)
    return AngerModel(encoder="multilingual-e5-small", weights=regression.coef_[0].astype(
        np.float32), bias=float(regression.intercept_[0]), threshold=best_threshold(y, folds))


def evaluate(model: AngerModel, examples: list[Example], embed: Embedder) -> dict[str, object]:
    """Held-out precision/recall, overall and per language."""
    scores = np.array([model.score(embed(e.text)) for e in examples])
    labels = np.array([e.angry for e in examples])
    report: dict[str, object] = {"all": measure(labels, scores, model.threshold).as_dict()}
    for lang in sorted({e.lang for e in examples}):
        mask = np.array([e.lang == lang for e in examples])
        report[lang] = measure(labels[mask], scores[mask], model.threshold).as_dict()
    return report


def save(model: AngerModel, heldout: dict[str, object], path: Path = MODEL_PATH) -> None:
    """Write the model file (weights rounded to 6 decimals)."""
    doc = {"encoder": model.encoder, "threshold": model.threshold, "bias": round(model.bias, 6),
           "heldout": heldout, "weights": [round(float(w), 6) for w in model.weights]}
    path.write_text(json.dumps(doc, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Train (or ``--measure``) and print the held-out figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", action="store_true", help="only score the held-out set")
    args = parser.parse_args(argv)
    embed = shared_embedder()
    model = AngerModel.load() if args.measure else train(load(TRAIN), embed)
    report = evaluate(model, load(HELDOUT), embed)
    if not args.measure:
        save(model, report)
    print(json.dumps({"threshold": model.threshold, "heldout": report}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
