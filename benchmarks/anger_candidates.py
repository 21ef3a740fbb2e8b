"""The anger model's candidates from issue #13, measured on kefu's labelled messages.

snownlp's bundled sentiment model (trained on product reviews; anger score = 1 − its positive
probability) and cnsenti (sentiment and emotion word lists; score = negative, 怒 and 恶 words over
those plus positive words plus one) score ``quality/data/anger_train.jsonl`` — where each gets
its best-F1 threshold on the same grid as kefu's model (``quality.anger_training``) — and then the
held-out ``anger_heldout.jsonl`` at that threshold. kefu's own figures are read from
``quality/data/anger_model.json`` (held out too), so the table compares like with like.

Neither library is a kefu dependency: run this with an interpreter that has them, e.g.::

    python3 -m venv /tmp/anger-venv && /tmp/anger-venv/bin/pip install snownlp cnsenti
    /tmp/anger-venv/bin/python benchmarks/anger_candidates.py

It imports nothing from kefu (plain Python), and writes ``benchmarks/results/anger_candidates.json``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "quality" / "data"
RESULT = ROOT / "benchmarks" / "results" / "anger_candidates.json"
GRID = [round(0.2 + 0.05 * i, 2) for i in range(15)]  # 0.2 … 0.9, as quality.anger_training


def load(name: str) -> list[dict[str, Any]]:
    """The labelled messages of a JSON-lines file."""
    text = (DATA / name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line]


def measure(rows: list[dict[str, Any]], scores: list[float], threshold: float) -> dict[str, float]:
    """Precision, recall and F1 of "angry" for ``score >= threshold``."""
    tp = sum(1 for r, s in zip(rows, scores, strict=True) if s >= threshold and r["angry"])
    fp = sum(1 for r, s in zip(rows, scores, strict=True) if s >= threshold and not r["angry"])
    fn = sum(1 for r, s in zip(rows, scores, strict=True) if s < threshold and r["angry"])
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3),
            "n": len(rows)}


def by_language(rows: list[dict[str, Any]], scores: list[float],
                threshold: float) -> dict[str, dict[str, float]]:
    """:func:`measure` on all rows and on each language's."""
    out = {"all": measure(rows, scores, threshold)}
    for lang in sorted({r["lang"] for r in rows}):
        picked = [(r, s) for r, s in zip(rows, scores, strict=True) if r["lang"] == lang]
        out[lang] = measure([r for r, _ in picked], [s for _, s in picked], threshold)
    return out


def evaluate(score: Callable[[str], float]) -> dict[str, Any]:
    """Threshold by F1 on the training set, figures on the held-out set."""
    train, heldout = load("anger_train.jsonl"), load("anger_heldout.jsonl")
    train_scores = [score(r["text"]) for r in train]
    threshold = max(GRID, key=lambda t: (measure(train, train_scores, t)["f1"], t))
    return {"threshold": threshold, "train": measure(train, train_scores, threshold),
            "heldout": by_language(heldout, [score(r["text"]) for r in heldout], threshold)}


def snownlp_score() -> Callable[[str], float]:
    """1 − snownlp's probability that the text is positive."""
    from snownlp import SnowNLP

    return lambda text: 1.0 - float(SnowNLP(text).sentiments)


def cnsenti_score() -> Callable[[str], float]:
    """Negative, 怒 and 恶 words over those plus positive words plus one (cnsenti's lists)."""
    from cnsenti import Emotion, Sentiment

    sentiment, emotion = Sentiment(), Emotion()

    def score(text: str) -> float:
        s, e = sentiment.sentiment_count(text), emotion.emotion_count(text)
        bad = s["neg"] + e["怒"] + e["恶"]
        return bad / (bad + s["pos"] + 1)

    return score


def main() -> int:
    """Measure each candidate and write the comparison."""
    ours = json.loads((DATA / "anger_model.json").read_text(encoding="utf-8"))
    result = {"kefu (e5 + logistic regression)": {"threshold": ours["threshold"],
                                                  "heldout": ours["heldout"]},
              "snownlp 0.12.3 (sentiment)": evaluate(snownlp_score()),
              "cnsenti 0.0.7 (word lists)": evaluate(cnsenti_score())}
    RESULT.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
