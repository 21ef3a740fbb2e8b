"""The development knowledge bases the answer decision is fitted and judged on, in one shape.

Each `DevSet` is a knowledge base (its entries), the questions asked of it (text, expected entry or
None, time, kind) and a *family*: sets built from the same source (a store with and without its
variants, at two times; CLINC150 with 1, 3, 10 or 100 texts per intent) share one, and every
figure is measured with the family left out of fitting (benchmarks/generalisation.py).

Sources (``KEFU_EVAL_DIR``, default ../shared/eval, never copied into the repository):
phone_store (a Chinese phone store written for this project's evaluation), CLINC150, Banking77,
HINT3 powerplay11 (real English traffic), CrossWOZ (Chinese out-of-scope lines). In the repository:
the demo store, benchmarks/data/zh_faq.yaml and six stores written apart from the scorer
(benchmarks/data/stores/: baby, snacks, furniture, pets, an English gadget shop, a bank FAQ).
A question whose expected entry is not live at its time must be handed off (expected becomes
None): a campaign question asked after the campaign.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from knowledge.loader import load_kb
from knowledge.models import Entry

ROOT = Path(__file__).resolve().parents[1]
EVAL = Path(os.environ.get("KEFU_EVAL_DIR", ROOT.parent / "shared" / "eval"))
STORES = ROOT / "benchmarks" / "data" / "stores"
NOW_EN = datetime.fromisoformat("2026-10-01T12:00:00+08:00")
PHONE_NOW = "2026-12-05T12:00:00+08:00"  # inside the Double 12 deposit window (its README)
PHONE_OUTSIDE = "2026-11-25T12:00:00+08:00"  # before any Double 12 entry opens
CROSSWOZ_SHIPPED = 300  # lines of CrossWOZ in knowledge/data/oos_crosswoz.txt (seed 1)


@dataclass(frozen=True)
class Question:
    """One labelled question."""

    text: str
    expected: str | None
    at: datetime
    kind: str


@dataclass(frozen=True)
class DevSet:
    """A knowledge base, the questions asked of it, and its family."""

    name: str
    family: str
    entries: tuple[Entry, ...]
    questions: tuple[Question, ...]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _canonical(entries: Sequence[Entry]) -> tuple[Entry, ...]:
    return tuple(e.model_copy(update={"variants": ()}) for e in entries)


def _live_or_none(entries: Sequence[Entry], questions: Sequence[Question]) -> tuple[Question, ...]:
    by_id = {e.id: e for e in entries}
    return tuple(
        Question(q.text, None, q.at, q.kind)
        if q.expected is not None and not by_id[q.expected].active_at(q.at) else q
        for q in questions
    )


def read_questions(path: Path, now: datetime) -> list[Question]:
    """A questions file (JSONL: text, expected, at?, kind?); lines without ``at`` are asked at now."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            kind = row.get("kind") or ("oos" if row.get("expected") is None else "in")
            out.append(Question(row["text"], row.get("expected"),
                                _at(row["at"]) if row.get("at") else now, kind))
    return out


def _store(name: str, family: str, kb_path: Path, questions: Path, now: str, *,
           variants: bool = True) -> DevSet:
    entries = load_kb(kb_path).entries
    if not variants:
        entries = _canonical(entries)
    asked = _live_or_none(entries, read_questions(questions, _at(now)))
    return DevSet(name, family, tuple(entries), asked)


def phone(*, variants: bool = True, now: str = PHONE_NOW) -> DevSet:
    """phone_store (../shared/eval); ``kb_canonical.yaml`` without variants."""
    name = "phone" + ("" if variants else "-canon") + ("" if now == PHONE_NOW else "-out")
    kb = EVAL / "phone_store" / ("kb.yaml" if variants else "kb_canonical.yaml")
    return _store(name, "phone", kb, EVAL / "phone_store" / "questions.jsonl", now)


def demo(*, variants: bool = True) -> DevSet:
    """The bundled demo store and its questions."""
    data = ROOT / "knowledge" / "data"
    return _store("demo" + ("" if variants else "-canon"), "demo", data / "demo_store.yaml",
                  data / "demo_questions.jsonl", "2026-10-01T12:00:00+08:00", variants=variants)


def store(name: str, *, variants: bool = True) -> DevSet:
    """One of benchmarks/data/stores (its README gives the time of questions without one)."""
    folder = STORES / name
    found = re.search(r'without "at" at ([0-9T:+\-]+)', (folder / "README.md").read_text())
    now = found.group(1).rstrip(".") if found else "2026-12-01T12:00:00+08:00"
    return _store(name + ("" if variants else "-canon"), name, folder / "kb.yaml",
                  folder / "questions.jsonl", now, variants=variants)


def zh_faq(*, variants: bool = True) -> DevSet:
    """benchmarks/data/zh_faq.yaml: held-out paraphrases per entry and its own OOS lines."""
    import yaml

    data = yaml.safe_load((ROOT / "benchmarks" / "data" / "zh_faq.yaml").read_text())
    now = _at("2026-10-01T12:00:00+08:00")
    entries, asked = [], []
    for e in data["entries"]:
        entries.append(Entry(id=e["id"], question=e["question"],
                             variants=tuple(e["variants"]) if variants else (),
                             answer=e["answer"], category=e["category"]))
        asked += [Question(q, e["id"], now, "zh") for q in e["heldout"]]
    asked += [Question(q, None, now, "oos") for q in data["oos"]]
    return DevSet("zhfaq" + ("" if variants else "-canon"), "zhfaq", tuple(entries), tuple(asked))


def _entry_id(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-")


def intent_entries(rows: Sequence[tuple[str, str]], per_entry: int = 0) -> tuple[Entry, ...]:
    """One entry per label: its first text the question, the next ``per_entry - 1`` (0: all)
    its variants; the answer is the question (these sets have no answers)."""
    by_label: dict[str, list[str]] = defaultdict(list)
    for text, label in rows:
        by_label[label].append(text)
    out = []
    for label, texts in sorted(by_label.items()):
        texts = list(dict.fromkeys(texts))[: per_entry or None]
        out.append(Entry(id=_entry_id(label), question=texts[0], variants=tuple(texts[1:]),
                         answer=texts[0], category="product"))
    return tuple(out)


def clinc(per_entry: int = 100, intents: int = 150, limit: int = 0, seed: int = 0) -> DevSet:
    """CLINC150: the first ``per_entry`` train texts of ``intents`` intents as the KB, val as the
    questions (val lines of left-out intents and oos_val are out of scope)."""
    data = json.loads((EVAL / "clinc150" / "clinc150_train_val.json").read_text())
    rng = random.Random(seed)
    labels = sorted({label for _, label in data["train"]})
    keep = set(rng.sample(labels, intents) if intents < len(labels) else labels)
    entries = intent_entries([(t, i) for t, i in data["train"] if i in keep], per_entry)
    inside = [Question(t, _entry_id(i), NOW_EN, "en") for t, i in data["val"] if i in keep]
    outside = [Question(t, None, NOW_EN, "oos-intent") for t, i in data["val"] if i not in keep]
    if limit:
        inside = rng.sample(inside, min(limit, len(inside)))
        outside = rng.sample(outside, min(limit // 3, len(outside)))
    oos = [Question(t, None, NOW_EN, "oos") for t, _ in data["oos_val"]]
    name = "clinc-full" if per_entry == 100 and intents == 150 else f"clinc-{intents}x{per_entry}"
    return DevSet(name, "clinc", entries, tuple(inside + outside + oos))


def banking(per_entry: int = 10, intents: int = 77, limit: int = 600, seed: int = 0) -> DevSet:
    """Banking77: ``per_entry`` random texts per intent as the KB, other texts as questions;
    out of scope: texts of left-out intents and CLINC150 oos_val."""
    with (EVAL / "banking77" / "banking77_train.csv").open(newline="") as f:
        rows = [(r["text"], r["category"]) for r in csv.DictReader(f)]
    rng = random.Random(seed)
    labels = sorted({label for _, label in rows})
    keep = sorted(rng.sample(labels, intents)) if intents < len(labels) else labels
    by_label: dict[str, list[str]] = defaultdict(list)
    for text, label in rows:
        by_label[label].append(text)
    kb_rows, inside, outside = [], [], []
    for label in keep:
        texts = by_label[label][:]
        rng.shuffle(texts)
        kb_rows += [(t, label) for t in texts[:per_entry]]
        inside += [Question(t, _entry_id(label), NOW_EN, "en") for t in texts[per_entry:]]
    for label in sorted(set(by_label) - set(keep)):
        outside += [Question(t, None, NOW_EN, "oos-intent") for t in by_label[label]]
    inside = rng.sample(inside, min(limit, len(inside)))
    outside = rng.sample(outside, min(limit // 3, len(outside)))
    data = json.loads((EVAL / "clinc150" / "clinc150_train_val.json").read_text())
    oos = [Question(t, None, NOW_EN, "oos") for t, _ in data["oos_val"]]
    return DevSet(f"banking-{intents}x{per_entry}", "banking", intent_entries(kb_rows),
                  tuple(inside + outside + oos))


def hint3(domain: str = "powerplay11") -> DevSet:
    """HINT3 v2: train sentences per label as the KB, the test lines (real traffic) as questions."""
    path = EVAL / f"hint3_{domain}" / f"{domain}_v2.csv"
    rows = list(csv.DictReader(path.open(newline="")))
    none = "NO_NODES_DETECTED"
    train = [(r["sentence"], r["label"]) for r in rows if r["split"] == "train"
             and r["label"] != none]
    asked = [Question(r["sentence"], None if r["label"] == none else _entry_id(r["label"]),
                      NOW_EN, "oos" if r["label"] == none else "en")
             for r in rows if r["split"] == "test"]
    return DevSet(f"hint3-{domain}", "hint3", intent_entries(train), tuple(asked))


def crosswoz_lines(limit: int = 400, seed: int = 0) -> list[str]:
    """CrossWOZ user turns not shipped in the calibration pool (Chinese out-of-scope questions)."""
    lines = [s.strip() for s in (EVAL / "crosswoz_zh" / "val_user_turns.txt").read_text(
        encoding="utf-8").splitlines() if s.strip()]
    shipped = set(random.Random(1).sample(lines, CROSSWOZ_SHIPPED))
    rest = [s for s in lines if s not in shipped]
    return random.Random(seed).sample(rest, min(limit, len(rest)))


def with_crosswoz(base: DevSet, limit: int = 400) -> DevSet:
    """A Chinese store asked CrossWOZ lines it must hand off (kind ``crosswoz``)."""
    when = base.questions[0].at if base.questions else NOW_EN
    extra = tuple(Question(t, None, when, "crosswoz") for t in crosswoz_lines(limit))
    return DevSet(f"{base.name}+crosswoz", base.family, base.entries, extra)


STORE_NAMES = ("baby", "snacks", "furniture", "pets", "gadgets_en", "bank_faq")


def all_sets() -> dict[str, Callable[[], DevSet]]:
    """Every development set by name (loaded lazily)."""
    sets: dict[str, Callable[[], DevSet]] = {
        "phone": phone, "phone-canon": lambda: phone(variants=False),
        "phone-out": lambda: phone(now=PHONE_OUTSIDE),
        "phone-canon-out": lambda: phone(variants=False, now=PHONE_OUTSIDE),
        "phone+crosswoz": lambda: with_crosswoz(phone()),
        "demo": demo, "demo-canon": lambda: demo(variants=False),
        "demo+crosswoz": lambda: with_crosswoz(demo()),
        "zhfaq": zh_faq, "zhfaq-canon": lambda: zh_faq(variants=False),
        "hint3-powerplay11": hint3,
        "clinc-full": clinc, "clinc-150x10": lambda: clinc(10, limit=1000),
        "clinc-50x3": lambda: clinc(3, intents=50, seed=3),
        "clinc-150x1": lambda: clinc(1, limit=1000, seed=4),
        "banking-77x10": banking, "banking-77x100": lambda: banking(100, limit=800, seed=6),
        "banking-40x5": lambda: banking(5, intents=40, seed=5),
        "banking-77x1": lambda: banking(1, seed=2),
    }
    for name in STORE_NAMES:
        sets[name] = lambda name=name: store(name)  # type: ignore[misc]
        sets[f"{name}-canon"] = lambda name=name: store(name, variants=False)  # type: ignore[misc]
    return sets
