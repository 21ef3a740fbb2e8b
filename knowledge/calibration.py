"""Publish-time calibration: what the confidence model needs to know about one knowledge base.

Nothing here is a threshold. The decision's thresholds are global (`knowledge.confidence`), read
off features that are relative to the knowledge base; calibration computes what they are relative
to, from the knowledge base alone:

1. its **head** (`knowledge.head`): a classifier over its entries, fitted on their rows;
2. the **pool**: generic questions no shop answers (``data/generic_oos.txt``, and for Chinese
   knowledge bases 300 CrossWOZ travel questions, ``data/oos_crosswoz.txt``) asked against it —
   where out-of-scope questions land on *this* knowledge base;
3. **crowding**: for every entry, how close its nearest other entry comes;
4. **held-out questions**: every question or variant of an entry with two texts or more, asked
   with that text left out of the index (its head opinion from a head fitted without it), and the
   knowledge base's own ``tests:`` — how often the best entry is right at each confidence, on this
   knowledge base. Real questions are easier than held-out variants, which the confidence model
   learnt across knowledge bases; a plain Q&A sheet has none, and the model knows that too.

`assess` says in plain words what to expect of a knowledge base (the admin's review shows it),
for instance that a sheet without variants answers far fewer questions at once.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from knowledge.confidence import Profile, Ranked, crowding, lexical_view
from knowledge.head import EntryHead, cross_fitted
from knowledge.models import KnowledgeBase
from knowledge.ranking import Ranker
from knowledge.retrieval import Retriever, Signals, query_form

logger = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parent / "data"
GENERIC_OOS_PATH = DATA / "generic_oos.txt"
CROSSWOZ_PATH = DATA / "oos_crosswoz.txt"
MAX_HELD_OUT = 4000  # held-out rows asked on big knowledge bases (a random sample beyond this)
MIN_VARIANTS_SHARE = 0.5  # below this share of entries with variants a knowledge base is "thin"


def load_generic_oos(path: Path = GENERIC_OOS_PATH) -> list[str]:
    """Questions from a file, one per line (blank lines and ``#`` comments skipped)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]


def language_of(kb: KnowledgeBase) -> str:
    """``en`` when most canonical questions are ASCII, else ``zh``."""
    ascii_share = np.mean([e.question.isascii() for e in kb.entries]) if kb.entries else 0.0
    return "en" if ascii_share > 0.5 else "zh"


def generic_oos(language: str) -> list[str]:
    """The out-of-scope pool for a knowledge base's language (see the module doc)."""
    generic = load_generic_oos()
    if language == "en":
        return [q for q in generic if q.isascii()]
    return generic + load_generic_oos(CROSSWOZ_PATH)


@dataclass(frozen=True)
class HeldOut:
    """Questions asked against the knowledge base with their right entry's position."""

    texts: list[str]
    ats: list[datetime | None]
    right: np.ndarray  # entry position per question
    rows: np.ndarray  # the row left out per question, -1 for none


def held_out(retriever: Retriever, kb: KnowledgeBase, limit: int = MAX_HELD_OUT) -> HeldOut:
    """Every text of entries with two texts or more (its row left out), then the tests."""
    texts: list[str] = []
    ats: list[datetime | None] = []
    right: list[int] = []
    rows: list[int] = []
    candidates = [r for r in range(len(retriever.rows))
                  if retriever.starts[retriever.row_entry[r] + 1]
                  - retriever.starts[retriever.row_entry[r]] >= 2]
    if len(candidates) > limit:
        candidates = sorted(random.Random(0).sample(candidates, limit))
    for r in candidates:
        entry = retriever.entries[int(retriever.row_entry[r])]
        texts.append(retriever.rows[r])
        ats.append(entry.valid_from if entry.valid_from or entry.valid_until else None)
        right.append(int(retriever.row_entry[r]))
        rows.append(r)
    for test in kb.tests:
        position = retriever.index_of(test.expected) if test.expected is not None else None
        if position is not None:
            texts.append(query_form(test.text))
            ats.append(test.at)
            right.append(position)
            rows.append(-1)
    return HeldOut(texts, ats, np.asarray(right, dtype=np.int64), np.asarray(rows, dtype=np.int64))


def fit_head(retriever: Retriever) -> EntryHead:
    """The knowledge base's classifier, fitted on all its rows."""
    second = retriever.second_rows if retriever.second_rows is not None else retriever.primary_rows
    return EntryHead.fit(retriever.primary_rows, second, retriever.row_entry,
                         len(retriever.entries))


def held_out_signals(retriever: Retriever, asked: HeldOut) -> Signals:
    """Signals of the held-out questions, each head opinion from a head that never saw it."""
    s = retriever.with_head(None).signals(asked.texts, asked.ats,
                                          exclude_rows=asked.rows.tolist())
    second = retriever.second_rows if retriever.second_rows is not None else retriever.primary_rows
    own = asked.rows >= 0
    head = np.zeros_like(s.head)
    if own.any():
        head[own] = cross_fitted(retriever.primary_rows, second, retriever.row_entry,
                                 len(retriever.entries), asked.rows[own])
    if (~own).any() and retriever.head is not None:
        head[~own] = retriever.signals([asked.texts[i] for i in np.nonzero(~own)[0]],
                                       [asked.ats[i] for i in np.nonzero(~own)[0]]).head
    masked = np.where(s.live, head, 0.0)
    s.head = masked / np.maximum(masked.sum(axis=1, keepdims=True), 1e-12)
    return s


@dataclass(frozen=True)
class Observations:
    """What calibration asks of a knowledge base, before any ranking: signals and answers."""

    pool: Signals  # the generic out-of-scope questions
    held_out: Signals | None  # held-out questions and variants, and tests
    held_out_right: np.ndarray  # their right entries
    crowd_dense: np.ndarray
    crowd_second: np.ndarray
    texts_per_entry: np.ndarray
    docs: list[frozenset[str]]
    idf: dict[str, float]
    max_idf: float


def observe(retriever: Retriever, pool: Sequence[str], kb: KnowledgeBase | None = None, *,
            with_held_out: bool = True) -> Observations:
    """Ask the pool (and the held-out questions) of a knowledge base whose retriever has its head.

    ``with_held_out=False`` skips the held-out questions (a provisional index answers meanwhile).
    """
    crowd_dense, crowd_second = crowding(retriever)
    docs, idf, max_idf = lexical_view(retriever)
    held: Signals | None = None
    right = np.zeros(0, dtype=np.int64)
    if with_held_out and kb is not None:
        asked = held_out(retriever, kb)
        if len(asked.texts):
            held, right = held_out_signals(retriever, asked), asked.right
    return Observations(
        pool=retriever.signals(list(pool), [None] * len(pool)), held_out=held,
        held_out_right=right, crowd_dense=crowd_dense, crowd_second=crowd_second,
        texts_per_entry=np.maximum(1, np.diff(retriever.starts)).astype(np.float64),
        docs=docs, idf=idf, max_idf=max_idf,
    )


def profile_from(obs: Observations, ranker: Ranker) -> Profile:
    """The `Profile` the confidence model reads, under one ranker."""
    pr = Ranked.of(ranker, obs.pool)
    rows = np.arange(len(obs.pool))
    top = pr.order[:, 0] if len(rows) else np.zeros(0, dtype=np.int64)
    out = Profile(
        pool_z1=np.sort(pr.logits[rows, top]), pool_dense=np.sort(obs.pool.dense[rows, top]),
        pool_second=np.sort(obs.pool.second[rows, top]), crowd_dense=obs.crowd_dense,
        crowd_second=obs.crowd_second, texts_per_entry=obs.texts_per_entry, docs=obs.docs,
        idf=obs.idf, max_idf=obs.max_idf,
    )
    if obs.held_out is not None:
        ranked = Ranked.of(ranker, obs.held_out)
        best = ranked.order[:, 0]
        r = np.arange(len(best))
        out.loo_p1 = ranked.probs[r, best]
        out.loo_head = obs.held_out.head[r, best]
        out.loo_right = (best == obs.held_out_right).astype(np.float64)
    return out


def profile(
    retriever: Retriever, ranker: Ranker, pool: Sequence[str], kb: KnowledgeBase | None = None,
    *, with_held_out: bool = True,
) -> Profile:
    """The `Profile` of a knowledge base whose retriever carries its head (see the module doc)."""
    return profile_from(observe(retriever, pool, kb, with_held_out=with_held_out), ranker)


@dataclass(frozen=True)
class Assessment:
    """What to expect of a knowledge base, for the people who write it."""

    entries: int
    with_variants: int  # entries with two texts or more
    thin: bool  # too few variants to answer safely at once
    held_out_right: float | None  # share of held-out texts whose best entry is right
    advice: str


def assess(kb: KnowledgeBase, prof: Profile, expected: dict[str, dict[str, float]]) -> Assessment:
    """Plain-words expectations for ``kb`` (``expected``: the model's dev figures by KB kind)."""
    n = len(kb.entries)
    varied = sum(1 for e in kb.entries if len(e.variants) >= 1)
    thin = n > 0 and varied / n < MIN_VARIANTS_SHARE
    right = float(prof.loo_right.mean()) if prof.has_loo else None
    canon, rich = expected.get("canonical", {}), expected.get("variants", {})
    if thin:
        advice = (f"{n - varied} of {n} entries have no variants. On knowledge bases like this the "
                  f"bot answers about {canon.get('answered_right', 0):.0%} of in-scope questions "
                  f"at once and clarifies more; with 3 variants per entry, as shoppers would ask, "
                  f"about {rich.get('answered_right', 0):.0%} (dev figures, "
                  "benchmarks/results/generalisation.md). Add variants to the entries shoppers "
                  "ask most first.")
    else:
        advice = (f"{varied} of {n} entries have variants; on knowledge bases like this the bot "
                  f"answers about {rich.get('answered_right', 0):.0%} of in-scope questions at "
                  f"once, {rich.get('precision', 0):.0%} of its answers right.")
    return Assessment(entries=n, with_variants=varied, thin=thin, held_out_right=right,
                      advice=advice)
