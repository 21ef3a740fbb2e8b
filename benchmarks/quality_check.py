"""Per-message cost of quality control, as the gateway pays it.

What runs on the message path is :meth:`quality.monitor.QualityMonitor.observe`'s synchronous part:
the live rules' regular expressions over the message (:class:`quality.rules.Checker`). The anger
score runs after it, off the reply path, in a worker thread: a dot product when the knowledge
decision's vector is already in the shared encoder's cache (the gateway's case: the message was
embedded for the decision), a full e5 forward pass when it is not. Measures all three on the
labelled shopper messages and a set of agent replies, and writes
``benchmarks/results/quality_check.json``.

    .venv/bin/python benchmarks/quality_check.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # before benchmarks/, whose handoff.py would shadow the package

from kefu.conversation import Role  # noqa: E402
from quality.anger import AngerModel, shared_embedder  # noqa: E402
from quality.anger_training import HELDOUT, TRAIN, load  # noqa: E402
from quality.rules import Checker, default_rule_set  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "quality_check.json"
AGENT_REPLIES = ["您好，退款将在 1-3 个工作日内原路退回。", "亲，已经帮您催促仓库了，今天会发出。",
                 "订单号 E20240611001 已经签收，请问还有什么可以帮您？", "I have escalated your refund.",
                 "加我微信 kefu123 私下处理", "我保证明天给您退款", "你自己看详情页"]


def micros(samples: list[float]) -> dict[str, float]:
    """Mean, p50 and p95 of ``samples`` (seconds) in microseconds."""
    ordered = sorted(samples)
    return {"mean_us": round(statistics.fmean(ordered) * 1e6, 2),
            "p50_us": round(ordered[len(ordered) // 2] * 1e6, 2),
            "p95_us": round(ordered[int(len(ordered) * 0.95)] * 1e6, 2)}


def timed(call: object, args: list[tuple[object, ...]], rounds: int) -> list[float]:
    """Seconds of each call of ``call(*a)`` for every ``a`` in ``args``, ``rounds`` times."""
    assert callable(call)
    samples = []
    for _ in range(rounds):
        for a in args:
            start = time.perf_counter()
            call(*a)
            samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    """Run the measurements and write the results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    checker = Checker(default_rule_set())
    shoppers = [e.text for e in load(TRAIN) + load(HELDOUT)]
    messages = [(Role.SHOPPER, t) for t in shoppers] + [(Role.AGENT, t) for t in AGENT_REPLIES]
    rules = timed(checker.check, messages, args.rounds)
    model = AngerModel.load()
    embed = shared_embedder()
    cold_texts = [(f"{t} #{i}",) for i, t in enumerate(shoppers[:60])]  # never embedded before
    cold = timed(embed, cold_texts, 1)
    vectors = [(embed(t),) for t in shoppers[:60]]
    warm = timed(model.score, vectors, args.rounds)
    result = {"messages": len(messages), "rounds": args.rounds,
              "rules_check": micros(rules), "anger_cached_vector": micros(warm),
              "anger_cold_embedding": micros(cold)}
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
