"""Simulated shoppers on the HTTP API, for the fault tests and benchmarks/faults.py.

:class:`Tokens` keeps each conversation's token as a client must (the first reply hands it out,
every later call shows it). :func:`shop` runs ``shoppers`` concurrent shoppers until told to stop:
each types a few of the demo store's questions, a quarter of them end by asking for a person
("转人工", "我要投诉"), and every message is retried the way the widget does it: after a
connection error (a gateway restarting), after ``retry_after`` (Redis away: not kept) or a 429.
Everything they saw is counted in :class:`Tally`, and :func:`check_kept` compares what they
were told was kept with Redis afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from handoff.service import HandoffService
from kefu.conversation import ConversationStore, Role
from kefu.redis import async_client

QUESTIONS = Path(__file__).resolve().parents[2] / "knowledge" / "data" / "demo_questions.jsonl"
HANDOFF_WORDS = ("转人工", "我要投诉，东西是坏的", "人工客服", "/request_human")
NO_RATE_LIMITS = {"KEFU_SENDER_RATE_PER_MINUTE": "0", "KEFU_ADDRESS_RATE_PER_MINUTE": "0"}
"""Environment of a stack whose shoppers all come from one address (a benchmark, a test)."""


class Tokens:
    """Conversation tokens handed out by the gateway, kept per sender and shown back."""

    def __init__(self) -> None:
        self._by_sender: dict[str, str] = {}

    def headers(self, sender: str) -> dict[str, str]:
        token = self._by_sender.get(sender)
        return {"Authorization": f"Bearer {token}"} if token else {}

    def keep(self, sender: str, reply: dict[str, Any]) -> None:
        token = reply.get("conversation_token")
        if token:
            self._by_sender[sender] = str(token)


@dataclass
class Tally:
    """What the simulated shoppers saw."""

    sent: int = 0  # messages a shopper meant to send (each counted once, however often retried)
    replies: int = 0  # 200 answers
    empty: int = 0  # 200 answers in bot mode with no message: silence
    status: Counter[int] = field(default_factory=Counter)  # every non-200 status
    connection_errors: int = 0  # no answer at all (a gateway down): the message was resent
    not_kept: int = 0  # answered "send it again" (retry_after): resent
    started_over: int = 0  # first replies lost with a killed gateway: a new conversation (401)
    kept: dict[str, list[str]] = field(default_factory=dict)  # conversation → texts it was told
    asked_for_a_person: set[str] = field(default_factory=set)  # conversations that asked
    unanswered: int = 0  # given up on after the deadline
    latencies: list[float] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        return sum(n for code, n in self.status.items() if code >= 500)


def demo_questions(seed: int = 11) -> list[str]:
    rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    texts = [str(row["text"]) for row in rows]
    random.Random(seed).shuffle(texts)
    return texts


class Browser:
    """One shopper's HTTP connection, opened afresh after a connection error, as a browser does
    (a pool shared by every shopper could keep connections the killed gateway left broken)."""

    def __init__(self, gateway_url: str) -> None:
        self._url = gateway_url
        self.http = self._open()

    def _open(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self._url, timeout=httpx.Timeout(30, pool=5))

    async def reopen(self) -> None:
        await self.close()
        self.http = self._open()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.http.aclose()


@dataclass
class Chat:
    """The conversation a shopper is in: its sender id may change once it cannot be opened."""

    sender: str

    @property
    def conversation(self) -> str:
        return f"web:{self.sender}"


async def _send(browser: Browser, tokens: Tokens, tally: Tally, chat: Chat, text: str,
                give_up_at: float) -> dict[str, Any] | None:
    """One message, resent until it is answered (or the deadline passes).

    A 401 for a conversation the shopper holds no token of means its first reply (with the
    token) was lost with a killed gateway: like the widget, the shopper starts a new one.
    """
    tally.sent += 1
    while time.monotonic() < give_up_at:
        started = time.monotonic()
        sender = chat.sender
        try:
            response = await browser.http.post("/api/v1/messages", headers=tokens.headers(sender),
                                               json={"sender": sender, "text": text})
        except httpx.HTTPError:
            tally.connection_errors += 1
            await browser.reopen()
            await asyncio.sleep(0.5)
            continue
        if response.status_code == 401 and not tokens.headers(sender):
            tally.started_over += 1
            chat.sender = f"{sender}-again"
            continue
        if response.status_code != 200:
            tally.status[response.status_code] += 1
            await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
            continue
        reply: dict[str, Any] = response.json()
        tally.latencies.append(time.monotonic() - started)
        tokens.keep(sender, reply)
        tally.replies += 1
        if reply.get("retry_after") is not None:
            tally.not_kept += 1
            await asyncio.sleep(float(reply["retry_after"]))
            continue
        if reply["mode"] == "bot" and not reply["messages"]:
            tally.empty += 1
        tally.kept.setdefault(chat.conversation, []).append(text)
        return reply
    tally.unanswered += 1
    return None


async def _shopper(browser: Browser, tokens: Tokens, tally: Tally, name: str,
                   questions: list[str], stop: asyncio.Event, give_up_at: float,
                   rng: random.Random) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        chat = Chat(f"{name}-{n}")
        for _ in range(rng.randint(2, 5)):
            await _send(browser, tokens, tally, chat, rng.choice(questions), give_up_at)
            await asyncio.sleep(rng.uniform(0.2, 0.8))  # reading, typing
            if stop.is_set():
                return
        if rng.random() < 0.25:
            reply = await _send(browser, tokens, tally, chat, rng.choice(HANDOFF_WORDS),
                                give_up_at)
            if reply is not None:
                tally.asked_for_a_person.add(chat.conversation)


async def shop(gateway_url: str, *, shoppers: int, stop: asyncio.Event, run: str,
               give_up_after: float = 300.0, seed: int = 11) -> Tally:
    """Run ``shoppers`` shoppers against ``gateway_url`` until ``stop`` is set."""
    tally, tokens, questions = Tally(), Tokens(), demo_questions(seed)
    give_up_at = time.monotonic() + give_up_after
    browsers = [Browser(gateway_url) for _ in range(shoppers)]
    try:
        await asyncio.gather(*(
            _shopper(browser, tokens, tally, f"{run}-s{i}", questions, stop, give_up_at,
                     random.Random(seed * 100 + i))
            for i, browser in enumerate(browsers)))
    finally:
        for browser in browsers:
            await browser.close()
    return tally


@dataclass
class Kept:
    """What Redis holds of what the shoppers were told was kept."""

    lost_messages: list[tuple[str, str]]  # (conversation, text) answered but not in Redis
    missing_tickets: list[str]  # conversations that asked for a person and have no ticket


async def check_kept(redis_url: str, tally: Tally) -> Kept:
    """Every answered message in its transcript; every request for a person a ticket."""
    redis = async_client(redis_url)
    conversations = ConversationStore(redis)
    handoff = HandoffService(redis, conversations)
    lost: list[tuple[str, str]] = []
    missing: list[str] = []
    try:
        for conversation, texts in tally.kept.items():
            stored = Counter(t.text for t in await conversations.transcript(conversation)
                             if t.role is Role.SHOPPER)
            for text, count in Counter(t.strip() for t in texts).items():
                if stored[text] < count:
                    lost.append((conversation, text))
        for conversation in sorted(tally.asked_for_a_person):
            if await handoff.open_ticket(conversation) is None:
                missing.append(conversation)
    finally:
        await redis.aclose()
    return Kept(lost, missing)
