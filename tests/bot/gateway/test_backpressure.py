"""Peak load: bounded in-flight Rasa calls, a friendly busy answer instead of errors."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from bot.gateway.backpressure import BUSY_TEXT, Backpressure
from bot.gateway.errors import UpstreamUnavailable
from bot.gateway.rasa_client import RasaClient


class SlowRasa:
    """A Rasa REST channel that takes ``delay`` seconds and counts concurrent calls."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.running = 0
        self.peak = 0

    async def handler(self, request: httpx.Request) -> httpx.Response:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.running -= 1
        body = json.loads(request.content)
        return httpx.Response(200, json=[{"text": f"答：{body['message']}"}])


async def test_excess_calls_wait_briefly_then_get_the_busy_answer() -> None:
    slow = SlowRasa(delay=0.3)
    rasa = RasaClient("http://rasa", "t", transport=httpx.MockTransport(slow.handler))
    limiter = Backpressure(max_in_flight=3, max_wait_seconds=0.1)
    try:
        replies = await asyncio.gather(*(limiter.send(rasa, f"web:{i}", f"问题{i}", {})
                                         for i in range(8)))
    finally:
        await rasa.aclose()
    texts = [r[0].text for r in replies]
    assert slow.peak == 3
    assert sum(t == BUSY_TEXT for t in texts) == 5 and limiter.rejected == 5
    assert sorted(t for t in texts if t != BUSY_TEXT) == ["答：问题0", "答：问题1", "答：问题2"]
    assert limiter.in_flight == 0


async def test_waiting_is_enough_when_a_slot_frees_in_time() -> None:
    slow = SlowRasa(delay=0.05)
    rasa = RasaClient("http://rasa", "t", transport=httpx.MockTransport(slow.handler))
    limiter = Backpressure(max_in_flight=2, max_wait_seconds=2.0)
    try:
        replies = await asyncio.gather(*(limiter.send(rasa, f"web:{i}", "在吗", {})
                                         for i in range(6)))
    finally:
        await rasa.aclose()
    assert all(r[0].text == "答：在吗" for r in replies)
    assert slow.peak == 2 and limiter.rejected == 0


async def test_a_failing_call_frees_its_slot() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    rasa = RasaClient("http://rasa", "t", transport=httpx.MockTransport(down))
    limiter = Backpressure(max_in_flight=1, max_wait_seconds=0.05)
    try:
        for _ in range(3):
            with pytest.raises(UpstreamUnavailable):
                await limiter.send(rasa, "web:x", "hi", {})
    finally:
        await rasa.aclose()
    assert limiter.in_flight == 0 and limiter.rejected == 0
