"""Generalisation: the answer decision on knowledge bases it was not fitted on, beside a plain baseline.

``run`` fits the ranker and the confidence ensembles once per *family* of development sets with
that family left out (benchmarks/devsets.py), and asks each set's questions with the model that
never saw it; the policy's two cuts are chosen on those held-out predictions (the most issue
targets met, then the best mean accuracy). Every set is reported per ``kind`` beside a plain
baseline: e5 cosine of the nearest text, answered above a threshold chosen by leave-one-out over
the knowledge base's own texts (a text whose entry has no other text counts as one to hand off).
``fit`` fits the shipped model on every family and writes knowledge/data/decision_model.json.

Metrics (shares): ``answered_right`` in-scope questions answered with the right entry at once;
``wrong`` in-scope answered with another; ``precision`` right answers over all answers (an answer
to an out-of-scope question is wrong); ``oos_handoff`` out-of-scope questions handed off;
``clarify`` clarified over all; ``clarify_hit`` clarified in-scope questions whose options hold
the right entry; ``accuracy`` (right answers + out-of-scope handoffs) over all; ``top1`` the right
entry ranked first, whatever the decision.

Run: ``.venv/bin/python benchmarks/generalisation.py run`` (about 25 minutes the first time; vectors
are kept in var/bench-cache) and ``... fit``. Writes benchmarks/results/generalisation.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402

from benchmarks import devsets  # noqa: E402
from benchmarks.devsets import DevSet  # noqa: E402
from knowledge.calibration import (  # noqa: E402
    Observations,
    fit_head,
    generic_oos,
    language_of,
    observe,
    profile_from,
)
from knowledge.confidence import (  # noqa: E402
    FEATURES,
    MODEL_PATH,
    Profile,
    Ranked,
    TreeEnsemble,
    coverage,
    features,
)
from knowledge.decision import Policy  # noqa: E402
from knowledge.models import KnowledgeBase  # noqa: E402
from knowledge.ranking import Ranker, entry_features  # noqa: E402
from knowledge.retrieval import Retriever, Signals  # noqa: E402
from knowledge.text import normalize  # noqa: E402

log = logging.getLogger("generalisation")
CACHE = ROOT / "var" / "bench-cache"
RESULTS = ROOT / "benchmarks" / "results"
REPORT_ONLY = ("+crosswoz",)  # sets asked but never fitted on
GRID = [round(x, 2) for x in np.arange(0.40, 0.951, 0.05)]
# The targets on the kinds of sets we also measure on (group: metric, bound, sign).
GROUPS = {
    "stores": ["phone", "phone-out", "baby", "snacks", "furniture", "pets", "gadgets_en", "demo",
               "zhfaq", "bank_faq"],
    "canonical": ["phone-canon", "phone-canon-out", "baby-canon", "snacks-canon", "furniture-canon",
                  "pets-canon", "gadgets_en-canon", "demo-canon", "zhfaq-canon"],
    "real-traffic": ["hint3-powerplay11"],
    "large": ["clinc-full"],
    "bank-canonical": ["bank_faq-canon"],
}
TARGETS = {
    "stores": [("precision", 0.90), ("oos_handoff", 0.80), ("answered_right", 0.55)],
    "canonical": [("precision", 0.85), ("oos_handoff", 0.70), ("clarify", -0.30)],
    "large": [("answered_right", 0.85), ("oos_handoff", 0.85)],
    "bank-canonical": [("answered_right", 0.40), ("oos_handoff", 0.50)],
}
_TREES = {"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 40,
          "l2_regularization": 1.0, "early_stopping": False, "random_state": 0}


# ---- vectors -------------------------------------------------------------------------------------


class CachingEncoder:
    """An encoder remembering every vector by text, on disk between runs (``var/bench-cache``)."""

    def __init__(self, inner: Any, directory: Path) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.path = directory / f"{inner.name.replace('/', '_')}.npz"
        self.known: dict[str, np.ndarray] = {}
        self.dirty = False
        if self.path.exists():
            with np.load(self.path, allow_pickle=False) as data:
                self.known = dict(zip(data["texts"].tolist(), data["vectors"], strict=True))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self.known))
        for start in range(0, len(missing), 256):
            chunk = missing[start:start + 256]
            self.known.update(zip(chunk, np.asarray(self.inner.encode(chunk), np.float32),
                                  strict=True))
            self.dirty = True
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.known[t] for t in texts])

    def save(self) -> None:
        if self.dirty:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            texts = list(self.known)
            np.savez(self.path, texts=np.array(texts),
                     vectors=np.stack([self.known[t] for t in texts]))
            self.dirty = False


def encoders() -> tuple[CachingEncoder, CachingEncoder]:
    """int8 e5 (as served) and USE, each behind the disk cache."""
    from knowledge.encoders.embedding import UniversalSentenceEncoder, load_encoder
    from knowledge.settings import get_settings

    settings = get_settings()
    primary = load_encoder(str(ROOT / settings.embedding_model), int8=settings.embedding_int8)
    return CachingEncoder(primary, CACHE), CachingEncoder(UniversalSentenceEncoder(), CACHE)


# ---- one set, observed once ----------------------------------------------------------------------


@dataclass
class Prepared:
    """Everything about one set that does not depend on the fitted model."""

    ds: DevSet
    signals: Signals  # of its questions
    obs: Observations
    labels: np.ndarray  # right entry per question, -1 out of scope
    coverage: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # cov, miss, novel, share
    baseline: np.ndarray  # the plain baseline's threshold applied: answered entry or -1

    @property
    def name(self) -> str:
        return self.ds.name


def prepare(ds: DevSet, primary: CachingEncoder, second: CachingEncoder) -> Prepared:
    """Build, head and observe the set's knowledge base; signals of its questions."""
    started = time.perf_counter()
    kb = KnowledgeBase(entries=ds.entries)
    retriever = Retriever.build(ds.entries, primary, second)
    retriever = retriever.with_head(fit_head(retriever))
    obs = observe(retriever, generic_oos(language_of(kb)), kb)
    texts = [normalize(q.text) for q in ds.questions]
    s = retriever.signals(texts, [q.at for q in ds.questions])
    labels = np.array([retriever.index_of(q.expected) if q.expected else -1
                       for q in ds.questions], dtype=np.int64)
    for i in np.nonzero(labels >= 0)[0]:  # hidden by its live campaign twin: the twin is right
        if not s.live[i, labels[i]]:
            twin = [c for c, ev in retriever.twins.items() if labels[i] in ev and s.live[i, c]]
            labels[i] = twin[0] if twin else labels[i]
    prof = profile_from(obs, Ranker({}))
    cov = np.zeros(s.dense.shape)
    miss = np.zeros(s.dense.shape)
    novel = np.zeros(len(texts))
    share = np.zeros(len(texts))
    everything = list(range(len(ds.entries)))
    for i, text in enumerate(s.texts):
        cov[i], miss[i], novel[i], share[i] = coverage(text, prof, everything)
    base = _baseline(retriever, ds)
    log.info("%-22s %4d entries %5d questions, prepared in %.0fs", ds.name, len(ds.entries),
             len(texts), time.perf_counter() - started)
    return Prepared(ds, s, obs, labels, (cov, miss, novel, share), base)


def _baseline(retriever: Retriever, ds: DevSet) -> np.ndarray:
    """e5 nearest text; threshold from leave-one-out over the knowledge base's own texts."""
    rows = retriever.primary_rows
    entry_of = retriever.row_entry
    best_other = np.zeros(len(rows))
    right = np.zeros(len(rows), dtype=bool)
    for start in range(0, len(rows), 1024):
        sims = rows[start:start + 1024] @ rows.T
        sims[np.arange(len(sims)), np.arange(start, start + len(sims))] = -1.0  # itself left out
        best = sims.argmax(axis=1)
        best_other[start:start + 1024] = sims.max(axis=1)
        right[start:start + 1024] = entry_of[best] == entry_of[start:start + 1024]
    cuts = np.unique(np.concatenate([best_other, [1.01]]))
    scores = [int(np.sum(right & (best_other >= c)) + np.sum(~right & (best_other < c)))
              for c in cuts]
    cut = float(cuts[int(np.argmax(scores))])
    asked = retriever.with_head(None).signals([normalize(q.text) for q in ds.questions],
                                              [q.at for q in ds.questions])
    active = np.array([[e.active_at(q.at) for e in ds.entries] for q in ds.questions])
    dense = np.where(active, asked.dense, -1.0)
    top = dense.argmax(axis=1)
    out: np.ndarray = np.where(dense.max(axis=1) >= cut, top, -1)
    return out


# ---- the model under a ranker --------------------------------------------------------------------


def ranker_batches(sets: Sequence[Prepared]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """What `Ranker.fit` learns from: every set's entry features, live masks and right entries."""
    return [(entry_features(p.signals), p.signals.live, p.labels) for p in sets]


def rows_of(p: Prepared, ranker: Ranker) -> tuple[np.ndarray, Ranked, Profile]:
    """The confidence features of a set's questions under ``ranker``."""
    prof = profile_from(p.obs, ranker)
    ranked = Ranked.of(ranker, p.signals)
    cov, miss, novel, share = p.coverage

    def cover(i: int, entries: Sequence[int]) -> tuple[np.ndarray, np.ndarray, float, float]:
        picked = list(entries)
        return cov[i, picked], miss[i, picked], float(novel[i]), float(share[i])

    x = features(p.signals, ranked, prof, raw_texts=[q.text for q in p.ds.questions], cover=cover)
    return x, ranked, prof


def targets_of(p: Prepared, ranked: Ranked) -> tuple[np.ndarray, np.ndarray]:
    """Whether each question's best entry is right, and whether its right entry is in the top 3."""
    top3 = ranked.order[:, :3]
    right = (top3[:, 0] == p.labels) & (p.labels >= 0)
    in3 = np.array([label >= 0 and label in row for label, row in zip(p.labels, top3,
                                                                        strict=True)])
    return right, in3


def fit_trees(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray]) -> Any:
    """A tree ensemble on several sets, each set weighing the same."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    x = np.vstack(xs)
    y = np.concatenate(ys)
    total = len(y)
    weights = np.concatenate([np.full(len(part), total / (len(xs) * len(part))) for part in ys])
    return HistGradientBoostingClassifier(**_TREES).fit(x, y, sample_weight=weights)


@dataclass
class Predicted:
    """A set's questions as the model (fitted without its family) sees them."""

    p_top: np.ndarray
    p_in3: np.ndarray
    ranked: Ranked


def fit_on(train: Sequence[Prepared]) -> tuple[Ranker, Any, Any]:
    """Ranker, then the two ensembles, fitted on ``train``."""
    ranker = Ranker.fit(ranker_batches(train))
    xs, tops, in3s = [], [], []
    for p in train:
        x, ranked, _ = rows_of(p, ranker)
        right, in3 = targets_of(p, ranked)
        xs.append(x)
        tops.append(right)
        in3s.append(in3)
    return ranker, fit_trees(xs, tops), fit_trees(xs, in3s)


def leave_family_out(sets: dict[str, Prepared]) -> dict[str, Predicted]:
    """Predictions for every set from a model fitted without its family."""
    out: dict[str, Predicted] = {}
    families = sorted({p.ds.family for p in sets.values()})
    for family in families:
        started = time.perf_counter()
        train = [p for p in sets.values() if p.ds.family != family and _fittable(p.name)]
        ranker, top_model, in3_model = fit_on(train)
        for p in sets.values():
            if p.ds.family == family:
                x, ranked, _ = rows_of(p, ranker)
                out[p.name] = Predicted(top_model.predict_proba(x)[:, 1],
                                        in3_model.predict_proba(x)[:, 1], ranked)
        log.info("fold %-12s %.0fs", family, time.perf_counter() - started)
    return out


def _fittable(name: str) -> bool:
    return not any(tag in name for tag in REPORT_ONLY)


# ---- decisions and metrics -----------------------------------------------------------------------


def decisions(pred: Predicted, live: np.ndarray, policy: Policy) -> np.ndarray:
    """0 handoff, 1 answer, 2 clarify per question (as `knowledge.decision.choose`)."""
    n_live = live.sum(axis=1)
    answer = (pred.p_top >= policy.answer) & (n_live > 0)
    clarify = ~answer & (pred.p_in3 >= policy.clarify) & (n_live >= 2)
    return np.where(answer, 1, np.where(clarify, 2, 0))


def measure(labels: np.ndarray, kinds: np.ndarray, top: np.ndarray,
            top3: np.ndarray | None = None) -> dict[str, float]:
    """The module doc's metrics for decisions ``kinds`` with answered entry ``top``."""
    ins = labels >= 0
    answered = kinds == 1
    right = answered & (top == labels) & ins
    clar = kinds == 2
    hit = clar & ins
    if top3 is not None:
        hit = hit & np.array([label in row for label, row in zip(labels, top3, strict=True)])

    def share(part: np.ndarray, whole: np.ndarray) -> float:
        return float(part.sum() / whole.sum()) if whole.any() else float("nan")

    return {
        "n": len(labels), "in_scope": int(ins.sum()), "oos": int((~ins).sum()),
        "answered_right": share(right, ins), "wrong": share(answered & ~right & ins, ins),
        "precision": share(right, answered), "oos_handoff": share((kinds == 0) & ~ins, ~ins),
        "clarify": share(clar, np.ones_like(clar)), "clarify_hit": share(hit, clar & ins),
        "accuracy": float((right.sum() + ((kinds == 0) & ~ins).sum()) / max(1, len(labels))),
        "top1": share((top == labels) & ins, ins),
    }


def evaluate(p: Prepared, pred: Predicted, policy: Policy) -> dict[str, Any]:
    """Metrics of one set, whole and per kind, beside the baseline's."""
    kinds = decisions(pred, p.signals.live, policy)
    top = pred.ranked.order[:, 0]
    top3 = pred.ranked.order[:, :3]
    base_kinds = np.where(p.baseline >= 0, 1, 0)
    labels = p.labels
    qk = np.array([q.kind for q in p.ds.questions])
    out: dict[str, Any] = {"kefu": measure(labels, kinds, top, top3),
                           "baseline": measure(labels, base_kinds, p.baseline), "kinds": {}}
    for kind in sorted(set(qk)):
        m = qk == kind
        out["kinds"][kind] = {"kefu": measure(labels[m], kinds[m], top[m], top3[m]),
                              "baseline": measure(labels[m], base_kinds[m], p.baseline[m])}
    return out


def utility(m: dict[str, float]) -> float:
    """What a set's outcomes are worth per question, for choosing between policies.

    A right answer or an out-of-scope handoff +1, a wrong answer (or an out-of-scope one) -1, a
    clarification offering the right entry +0.5 (one click more), any other clarification -0.5
    (the shopper reads options for nothing, says "none of these" and waits for a person), an
    in-scope handoff 0.
    """
    n_in, n_oos = m["in_scope"], m["oos"]
    clarified = m["clarify"] * m["n"]
    hits = 0.0 if np.isnan(m["clarify_hit"]) else m["clarify_hit"] * min(clarified, n_in)
    right = 0.0 if np.isnan(m["answered_right"]) else m["answered_right"] * n_in
    wrong_in = 0.0 if np.isnan(m["wrong"]) else m["wrong"] * n_in
    handed = 0.0 if np.isnan(m["oos_handoff"]) else m["oos_handoff"] * n_oos
    answered_oos = n_oos - handed - (clarified - min(clarified, n_in)) if n_oos else 0.0
    value = right + handed - wrong_in - max(0.0, answered_oos) + 0.5 * hits \
        - 0.5 * (clarified - hits)
    return value / max(1, m["n"])


def choose_policy(sets: dict[str, Prepared], preds: dict[str, Predicted]) -> tuple[Policy, int]:
    """The grid point meeting the most targets on held-out predictions, then of most `utility`."""
    best: tuple[int, float, Policy] | None = None
    for answer in GRID:
        for clarify in GRID:
            policy = Policy(answer=answer, clarify=clarify)
            met, worth = 0, []
            for group, names in GROUPS.items():
                ms = [evaluate(sets[n], preds[n], policy)["kefu"] for n in names if n in sets]
                if not ms:
                    continue
                worth += [utility(m) for m in ms]
                for metric, bound in TARGETS.get(group, []):
                    value = float(np.nanmean([m[metric] for m in ms]))
                    met += value >= bound if bound >= 0 else value <= -bound
            key = (met, float(np.mean(worth)), policy)
            if best is None or key[:2] > best[:2]:
                best = key
    assert best is not None
    return best[2], best[0]


# ---- report --------------------------------------------------------------------------------------

COLUMNS = ("answered_right", "wrong", "precision", "oos_handoff", "clarify", "clarify_hit",
           "accuracy", "top1")


def _cells(m: dict[str, float]) -> str:
    return " | ".join("–" if np.isnan(m[c]) else f"{m[c]:.3f}" for c in COLUMNS)


def markdown(results: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = ["# Generalisation of the answer decision", "",
             "Every kefu row comes from a model fitted with that set's family left out "
             "(benchmarks/generalisation.py). Baseline: e5 nearest text, threshold from "
             "leave-one-out over the knowledge base's texts.", "",
             f"`{json.dumps(meta)}`", "",
             "| set | n (in / oos) | method | " + " | ".join(COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 3) + "|"]
    for name, r in results.items():
        k, b = r["kefu"], r["baseline"]
        size = f"{k['in_scope']} / {k['oos']}"
        lines.append(f"| {name} | {size} | kefu | {_cells(k)} |")
        lines.append(f"| | | baseline | {_cells(b)} |")
    lines += ["", "## Per kind", ""]
    for name, r in results.items():
        lines += [f"### {name}", "", "| kind | n | method | " + " | ".join(COLUMNS) + " |",
                  "|---" * (len(COLUMNS) + 3) + "|"]
        for kind, kr in r["kinds"].items():
            lines.append(f"| {kind} | {kr['kefu']['n']} | kefu | {_cells(kr['kefu'])} |")
            lines.append(f"| | | baseline | {_cells(kr['baseline'])} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def group_means(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Mean kefu metrics per group of sets (what `knowledge.calibration.assess` quotes)."""
    out = {}
    for group, names in GROUPS.items():
        ms = [results[n]["kefu"] for n in names if n in results]
        if ms:
            out[group] = {c: round(float(np.nanmean([m[c] for m in ms])), 4) for c in COLUMNS}
    return out


# ---- main ----------------------------------------------------------------------------------------


def prepare_all(names: Sequence[str], *, reuse: bool = False) -> dict[str, Prepared]:
    """Prepare every set; ``reuse`` reads sets prepared by an earlier run of the same code."""
    import pickle

    folder = CACHE / "prepared"
    folder.mkdir(parents=True, exist_ok=True)
    primary = second = None
    loaders = devsets.all_sets()
    out = {}
    for name in names:
        path = folder / f"{name}.pkl"
        if reuse and path.exists():
            out[name] = pickle.loads(path.read_bytes())
            continue
        if primary is None or second is None:
            primary, second = encoders()
        out[name] = prepare(loaders[name](), primary, second)
        path.write_bytes(pickle.dumps(out[name]))
        primary.save()
        second.save()
    return out


def run(sets: dict[str, Prepared], out: Path) -> dict[str, Any]:
    preds = leave_family_out(sets)
    policy, met = choose_policy(sets, preds)
    results = {name: evaluate(sets[name], preds[name], policy) for name in sets}
    meta = {"policy": policy.model_dump(), "targets_met": met, "date": date.today().isoformat(),
            "sets": len(sets), "latency": latency()}
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"meta": meta, "groups": group_means(results), "results": results}
    out.write_text(json.dumps(doc, indent=1, default=float))
    out.with_suffix(".md").write_text(markdown(results, meta))
    log.info("policy %s, %d targets met", policy, met)
    return doc


def latency(questions: int = 200) -> dict[str, float]:
    """One question at a time through the service as the gateway runs it (int8 e5 + USE, no
    query-vector cache): normalise, embed, rank, confidence, decide; on the demo store."""
    from knowledge.loader import load_kb
    from knowledge.service import KnowledgeService, build_index, shared_encoders
    from knowledge.settings import KnowledgeSettings

    settings = KnowledgeSettings(query_vector_cache=0, prefetch_query_vectors=False)
    kb = load_kb(ROOT / "knowledge" / "data" / "demo_store.yaml")
    service = KnowledgeService(build_index(kb, *shared_encoders(settings), settings=settings),
                               settings=settings)
    asked = [q.text for q in devsets.demo().questions][:questions]
    service.decide(asked[0])  # first call: lazy imports and allocations
    ms = []
    for text in asked:
        started = time.perf_counter()
        service.decide(text)
        ms.append((time.perf_counter() - started) * 1000.0)
    out = {"questions": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 1),
           "p95_ms": round(float(np.percentile(ms, 95)), 1)}
    log.info("one question at a time: p50 %.1f ms, p95 %.1f ms", out["p50_ms"], out["p95_ms"])
    return out


def fit(sets: dict[str, Prepared], held_out: Path, path: Path = MODEL_PATH) -> None:
    """Fit on every family; the policy and the expected figures come from the held-out run."""
    report = json.loads(held_out.read_text())
    train = [p for p in sets.values() if _fittable(p.name)]
    ranker, top_model, in3_model = fit_on(train)
    groups = report["groups"]
    spec = {
        "features": list(FEATURES),
        "ranker": ranker.weights,
        "p_top": TreeEnsemble.export(top_model),
        "p_in3": TreeEnsemble.export(in3_model),
        "policy": report["meta"]["policy"],
        "meta": {
            "fitted_on": sorted(p.name for p in train),
            "date": date.today().isoformat(),
            "expected": {"variants": groups.get("stores", {}),
                         "canonical": groups.get("canonical", {})},
            "how": "benchmarks/generalisation.py fit; figures: held-out run "
                   "(benchmarks/results/generalisation.md)",
        },
    }
    path.write_text(json.dumps(spec, separators=(",", ":")) + "\n")
    log.info("wrote %s (%d bytes)", path, path.stat().st_size)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("command", choices=("run", "fit", "both"))
    parser.add_argument("--sets", default="", help="comma-separated set names (default: all)")
    parser.add_argument("--out", type=Path, default=RESULTS / "generalisation.json")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse sets prepared by an earlier run (var/bench-cache/prepared)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("knowledge").setLevel(logging.WARNING)
    import jieba

    jieba.setLogLevel(logging.WARNING)
    names = [n for n in args.sets.split(",") if n] or list(devsets.all_sets())
    sets = prepare_all(names, reuse=args.reuse)
    if args.command in ("run", "both"):
        run(sets, args.out)
    if args.command in ("fit", "both"):
        fit(sets, args.out)
    return 0


if __name__ == "__main__":
    # run from the package's module, so prepared sets pickle as benchmarks.generalisation.Prepared
    from benchmarks import generalisation

    raise SystemExit(generalisation.main())
