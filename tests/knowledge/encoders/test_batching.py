"""BatchingEncoder: same vectors as the encoder it wraps, fewer forward passes, cached repeats."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from knowledge.encoders.batching import BatchingEncoder
from tests.knowledge.fakes import HashingEncoder


class CountingEncoder(HashingEncoder):
    """Records the size of every call; optionally fails the next ``fail`` calls."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__(delay=delay)
        self.calls: list[int] = []
        self.fail = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        if self.fail:
            self.fail -= 1
            if self.gate is not None:
                self.gate.wait(timeout=30)
            raise RuntimeError("model crashed (test)")
        return super().encode(texts)


def test_vectors_are_the_wrapped_encoders_in_order_with_repeats() -> None:
    inner = CountingEncoder()
    batching = BatchingEncoder(inner, cache_size=0)
    texts = ["定金能退吗", "运费", "定金能退吗", "refund?"]
    np.testing.assert_allclose(batching.encode(texts), HashingEncoder().encode(texts), atol=1e-6)
    assert inner.calls == [3]  # one pass, the repeated text embedded once
    assert (batching.name, batching.dim) == (inner.name, inner.dim)
    assert batching.encode([]).shape == (0, inner.dim)


def test_concurrent_questions_share_forward_passes() -> None:
    inner = CountingEncoder(delay=0.05)  # a slow model: questions pile up behind each pass
    batching = BatchingEncoder(inner, max_batch=8, cache_size=0)
    texts = [f"第{i}个问题 question {i}" for i in range(24)]
    with ThreadPoolExecutor(max_workers=24) as pool:
        vectors = list(pool.map(lambda t: batching.encode([t])[0], texts))
    expected = HashingEncoder().encode(texts)
    for got, want in zip(vectors, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)  # every caller got its own row
    assert sum(inner.calls) == 24 and max(inner.calls) <= 8
    assert len(inner.calls) < 24 and batching.batches == len(inner.calls)


def test_repeated_questions_come_from_the_cache_least_recent_evicted() -> None:
    inner = CountingEncoder()
    batching = BatchingEncoder(inner, cache_size=2)
    first = batching.encode(["什么时候发货"])
    again = batching.encode(["什么时候发货"])
    np.testing.assert_array_equal(first, again)
    assert inner.calls == [1] and (batching.hits, batching.misses) == (1, 1)
    batching.encode(["包邮吗"])
    batching.encode(["什么时候发货"])  # refreshed: now the most recent
    batching.encode(["能开发票吗"])  # evicts 包邮吗, the least recent
    batching.encode(["什么时候发货", "包邮吗"])
    assert inner.encoded == ["什么时候发货", "包邮吗", "能开发票吗", "包邮吗"]


def test_large_calls_bypass_the_queue_and_the_cache() -> None:
    inner = CountingEncoder()
    batching = BatchingEncoder(inner, max_batch=4)
    texts = [f"entry {i}" for i in range(10)]
    batching.encode(texts)
    batching.encode(texts)
    assert inner.calls == [10, 10] and batching.batches == 0 and batching.hits == 0


def test_a_failed_pass_fails_its_callers_and_the_next_pass_works() -> None:
    inner = CountingEncoder()
    batching = BatchingEncoder(inner, cache_size=0)
    inner.fail = 1
    with pytest.raises(RuntimeError, match="model crashed"):
        batching.encode(["a question"])
    np.testing.assert_allclose(batching.encode(["a question"]),
                               HashingEncoder().encode(["a question"]), atol=1e-6)
    workers = [t for t in threading.enumerate() if t.name.startswith("encoder-batch-")]
    assert workers and all(t.daemon for t in workers)


def test_a_prefetched_question_is_embedded_once_and_served_from_the_cache() -> None:
    inner = CountingEncoder()
    batching = BatchingEncoder(inner)
    batching.prefetch(["定金能退吗"])
    vector = batching.encode(["定金能退吗"])  # waits for the prefetch's pass if still running
    np.testing.assert_allclose(vector, HashingEncoder().encode(["定金能退吗"]), atol=1e-6)
    batching.prefetch(["定金能退吗"])  # cached: nothing to start
    assert inner.calls == [1] and batching.misses == 1


def test_a_question_asked_while_its_prefetch_runs_joins_that_pass() -> None:
    inner = CountingEncoder()
    inner.gate = threading.Event()  # the prefetch's pass holds until the question is asked
    batching = BatchingEncoder(inner, cache_size=8)
    batching.prefetch(["什么时候发货"])
    with ThreadPoolExecutor(max_workers=2) as pool:
        asked = [pool.submit(batching.encode, ["什么时候发货"]) for _ in range(2)]
        threading.Event().wait(0.05)
        assert not any(f.done() for f in asked)  # both wait for the pass under way
        inner.gate.set()
        vectors = [f.result(timeout=10) for f in asked]
    np.testing.assert_array_equal(vectors[0], vectors[1])
    assert inner.encoded == ["什么时候发货"]


def test_prefetch_needs_a_cache_and_leaves_large_calls_alone() -> None:
    inner = CountingEncoder()
    BatchingEncoder(inner, cache_size=0).prefetch(["包邮吗"])  # nowhere to keep the vector
    BatchingEncoder(inner, max_batch=2).prefetch(["a", "b", "c"])  # an index build's size
    threading.Event().wait(0.05)
    assert inner.calls == []


def test_a_failed_prefetch_fails_the_question_waiting_for_it_and_the_next_ask_retries() -> None:
    inner = CountingEncoder()
    inner.fail = 1
    inner.gate = threading.Event()
    batching = BatchingEncoder(inner)
    batching.prefetch(["能开发票吗"])
    with ThreadPoolExecutor(max_workers=1) as pool:
        asked = pool.submit(batching.encode, ["能开发票吗"])
        threading.Event().wait(0.05)
        inner.gate.set()
        with pytest.raises(RuntimeError, match="model crashed"):
            asked.result(timeout=10)
    np.testing.assert_allclose(batching.encode(["能开发票吗"]),
                               HashingEncoder().encode(["能开发票吗"]), atol=1e-6)
    assert inner.calls == [1, 1]
