"""Timings of the handoff queue with 1 000 waiting tickets, on a real redis-server (AOF on).

Measures, per operation, p50/p95/max latency in milliseconds and operations per second:
- enqueue: ``request_handoff`` (reads the conversation, builds the context packet, creates the
  ticket atomically, tells the shopper their position), one at a time, then 50 at once;
- open_ticket: the gateway's check on every shopper message (two GETs);
- position / estimated_wait: what the shopper is told;
- add_shopper_message: a shopper message going into a ticket;
- list: the console's ``GET /api/v1/tickets?status=waiting`` (all groups, and one agent's view);
- claim: agents taking the head of a queue (the 10 behind are told their new position);
- claim race: 8 agents claiming the same ticket at once (exactly one must win, every round);
- sweep: ``requeue_expired`` over the claimed tickets (nothing lapsed / all lapsed).

Run: ``.venv/bin/python benchmarks/handoff.py [--tickets 1000]``; starts its own redis-server
in a temporary directory. Writes benchmarks/results/handoff.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from handoff.errors import AlreadyClaimed  # noqa: E402
from handoff.models import HandoffReason, Priority, TicketStatus  # noqa: E402
from handoff.service import HandoffService  # noqa: E402
from handoff.settings import HandoffSettings  # noqa: E402
from kefu.accounts import Agent, Presence  # noqa: E402
from kefu.conversation import BotAnalysis, CandidateScore, ConversationStore, Role, utcnow  # noqa: E402
from kefu.keys import lease_key  # noqa: E402
from kefu.redis import async_client  # noqa: E402
from tests.helpers.processes import redis_server  # noqa: E402

GROUPS = ["presale", "aftersale", "logistics"]
RESULTS = ROOT / "benchmarks" / "results" / "handoff.json"


def summary(name: str, samples: list[float], wall: float | None = None) -> dict[str, Any]:
    ms = sorted(s * 1000 for s in samples)
    row = {
        "op": name, "n": len(ms), "p50_ms": round(statistics.median(ms), 3),
        "p95_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.95))], 3), "max_ms": round(ms[-1], 3),
        "ops_per_s": round(len(ms) / (wall if wall is not None else sum(samples)), 1),
    }
    print(f"{name:<34} n={row['n']:>5}  p50 {row['p50_ms']:>8.2f} ms  p95 {row['p95_ms']:>8.2f} ms"
          f"  max {row['max_ms']:>8.2f} ms  {row['ops_per_s']:>8.1f} ops/s")
    return row


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start


async def seed(store: ConversationStore, conv: str, rng: random.Random) -> None:
    await store.set_profile(conv, channel="web", display_name=f"顾客{conv[-4:]}")
    await store.append(conv, Role.SHOPPER, "你好，我的订单怎么还没发货？")
    await store.append(conv, Role.BOT, "请提供订单号，我帮您查询。")
    await store.append(conv, Role.SHOPPER, f"E2026{rng.randrange(10**8):08d}")
    await store.record_analysis(conv, BotAnalysis(
        at=utcnow(), text="订单怎么还没发货", intent="ask_shipping", intent_confidence=0.38,
        decision="handoff", category=rng.choice(["presale", "aftersale", "logistics"]),
        candidates=[CandidateScore(entry_id="ship-time", question="多久发货", score=0.47)]))


async def run(tickets: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as (port, _proc):
        redis = async_client(f"redis://127.0.0.1:{port}/0")
        service = HandoffService(redis, ConversationStore(redis),
                                 HandoffSettings(bcrypt_rounds=4, position_updates=10))
        agents: dict[str, list[Agent]] = {}
        for group in GROUPS:
            agents[group] = []
            for i in range(8):
                await service.agents.add(f"{group}{i}", "benchmark-pw", [group])
                agents[group].append(await service.agents.set_presence(f"{group}{i}",
                                                                       Presence.ONLINE))
        convs = [f"web:shopper{i:05d}" for i in range(tickets + 50)]
        for conv in convs:
            await seed(service.conversations, conv, rng)

        priorities = [Priority.NORMAL] * 8 + [Priority.HIGH] * 2 + [Priority.URGENT]

        async def enqueue(conv: str) -> None:
            await service.request_handoff(conv, reason=HandoffReason.LOW_CONFIDENCE, channel="web",
                                          priority=rng.choice(priorities))

        samples = [await timed(lambda c=c: enqueue(c)) for c in convs[:tickets]]
        rows.append(summary(f"enqueue (sequential, to {tickets})", samples))
        start = time.perf_counter()
        burst = await asyncio.gather(*(timed(lambda c=c: enqueue(c)) for c in convs[tickets:]))
        rows.append(summary("enqueue (50 concurrent)", list(burst), time.perf_counter() - start))
        waiting = await service.list_tickets(TicketStatus.WAITING, limit=10_000)
        assert len(waiting) == tickets + 50, len(waiting)

        sample = rng.sample(convs, 1000)
        rows.append(summary("open_ticket (gateway check)",
                            [await timed(lambda c=c: service.open_ticket(c)) for c in sample]))
        ids = [t.id for t in rng.sample(waiting, 1000)]
        rows.append(summary("queue_position",
                            [await timed(lambda i=i: service.queue_position(i)) for i in ids]))
        rows.append(summary("estimated_wait",
                            [await timed(lambda i=i: service.estimated_wait(i)) for i in ids]))
        rows.append(summary("add_shopper_message", [await timed(
            lambda c=c: service.add_shopper_message(c, "还要等多久？")) for c in sample[:300]]))
        rows.append(summary(f"list waiting (all, {len(waiting)})", [await timed(
            lambda: service.list_tickets(TicketStatus.WAITING, limit=10_000)) for _ in range(20)]))
        one = agents["logistics"][0]
        rows.append(summary("list open (one agent, limit 200)", [await timed(
            lambda: service.list_tickets(agent=one)) for _ in range(20)]))

        async def claim_head(agent: Agent) -> None:
            assert await service.claim_next(agent) is not None

        claim_samples = []
        for round_ in range(150):
            group = GROUPS[round_ % 3]
            agent = agents[group][round_ % 8]
            claim_samples.append(await timed(lambda a=agent: claim_head(a)))
        rows.append(summary("claim (head of queue)", claim_samples))

        race_samples, wins = [], []
        for _ in range(50):
            head = (await service.list_tickets(TicketStatus.WAITING, group="presale", limit=1))[0]
            start = time.perf_counter()
            results = await asyncio.gather(*(service.claim(head.id, a) for a in agents["presale"]),
                                           return_exceptions=True)
            race_samples.append(time.perf_counter() - start)
            assert all(isinstance(r, AlreadyClaimed) for r in results
                       if isinstance(r, BaseException)), results
            wins.append(sum(not isinstance(r, BaseException) for r in results))
        assert set(wins) == {1}, wins
        row = summary("claim race (8 agents, one ticket)", race_samples)
        row["winners_per_round"] = sorted(set(wins))
        rows.append(row)

        rows.append(summary("sweep, 200 claimed, none lapsed",
                            [await timed(service.requeue_expired) for _ in range(20)]))
        claimed = await service.list_tickets(TicketStatus.CLAIMED, limit=10_000)
        await redis.delete(*[lease_key(t.id) for t in claimed])  # as if every console vanished
        start = time.perf_counter()
        requeued = await service.requeue_expired()
        wall = time.perf_counter() - start
        rows.append({"op": "sweep, all lapsed", "n": requeued, "total_ms": round(wall * 1000, 1),
                     "per_ticket_ms": round(wall * 1000 / max(1, requeued), 3)})
        print(f"{'sweep, all lapsed':<34} n={requeued:>5}  total {wall * 1000:.1f} ms")
        await redis.aclose()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1000)
    args = parser.parse_args()
    rows = asyncio.run(run(args.tickets))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"tickets": args.tickets, "rows": rows}, indent=2,
                                  ensure_ascii=False) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
