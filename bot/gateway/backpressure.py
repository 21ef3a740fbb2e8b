"""Peak-load protection: a bounded number of Rasa calls per gateway process.

Rasa answers one message at a time per CPU; past a point, more concurrent calls only make every
shopper wait longer until requests time out. So each process lets at most ``max_in_flight`` Rasa
calls run at once, and a message that cannot get a slot within ``max_wait_seconds`` is not sent
to Rasa at all: the gateway answers it with :data:`BUSY_TEXT` as an ordinary bot message.

Decision: overload is **HTTP 200 with the busy
message**, on every channel including the API, not 503 + Retry-After. The shopper's message is
already in the transcript (agents see it, nothing is lost), every channel renders the answer
without special cases, and a shopper never sees an error page or a silent Telegram chat. API
clients can recognise the answer by its text (:data:`BUSY_TEXT`) and retry later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from bot.gateway.rasa_client import RasaClient, RasaMessage

logger = logging.getLogger(__name__)

BUSY_TEXT = ("当前咨询人数较多，请稍候片刻再发送一次～\n"
             "Many shoppers right now, please wait a moment and send your message again.")


class Backpressure:
    """At most ``max_in_flight`` Rasa calls at once; the rest wait briefly or get the busy text."""

    def __init__(self, max_in_flight: int = 16, max_wait_seconds: float = 2.0) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._slots = asyncio.Semaphore(max_in_flight)
        self._max_wait = max_wait_seconds
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.rejected = 0  # messages answered with BUSY_TEXT since start

    async def send(self, rasa: RasaClient, sender: str, text: str,
                   metadata: Mapping[str, Any]) -> list[RasaMessage]:
        """``rasa.send(...)`` inside a slot, or the busy message when no slot frees up in time."""
        if not await self._acquire():
            self.rejected += 1
            logger.warning("overloaded: %d Rasa calls in flight, answering %s with the busy "
                           "message (%d so far)", self.in_flight, sender, self.rejected)
            return [RasaMessage(BUSY_TEXT, [])]
        self.in_flight += 1
        try:
            return await rasa.send(sender, text, metadata)
        finally:
            self.in_flight -= 1
            self._slots.release()

    async def _acquire(self) -> bool:
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout=self._max_wait)
        except TimeoutError:
            return False
        return True
