"""Handoff latency: from the shopper's "转人工" to the ticket being visible in a live console.

Starts the whole stack on free ports (or uses a running one with ``--gateway-url`` and
``--redis-url``), creates an agent, logs in, keeps the console's event stream
(``GET /api/v1/agent/events``, server-sent events) open, then for N new shoppers posts
"转人工" to ``POST /api/v1/messages`` and measures until the ``ticket.waiting`` event of that
conversation arrives on the stream: the whole path Gateway → Rasa → the actions (in the gateway) → handoff
service → Redis pub/sub → console. Writes ``benchmarks/results/handoff_latency.json``.

    .venv/bin/python benchmarks/handoff_latency.py [--n 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx

from kefu.stack import StackConfig, run_stack

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "bench-password-123"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def add_agent(redis_url: str, name: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "kefu.cli", "agent", "add", name,
         "--groups", "presale,aftersale,logistics"],
        input=PASSWORD + "\n", text=True, check=True, cwd=ROOT,
        env={**os.environ, "KEFU_REDIS_URL": redis_url},
    )


async def measure(gateway: str, n: int, agent: str) -> list[float]:
    arrived: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=gateway, timeout=60) as client:
        token = (await client.post("/api/v1/agent/login",
                                   json={"username": agent, "password": PASSWORD})).json()["token"]
        ready = asyncio.Event()

        async def listen() -> None:
            headers = {"Authorization": f"Bearer {token}"}
            async with client.stream("GET", "/api/v1/agent/events", headers=headers,
                                     timeout=None) as stream:
                event = ""
                async for line in stream.aiter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                        if event == "ready":
                            ready.set()
                    elif line.startswith("data:") and event == "ticket.waiting":
                        data = json.loads(line[5:])
                        arrived.setdefault(data["conversation_id"], time.perf_counter())

        listener = asyncio.create_task(listen())
        await asyncio.wait_for(ready.wait(), 30)
        latencies = []
        for _ in range(n):
            sender = f"lat-{uuid.uuid4().hex[:8]}"
            conv = f"web:{sender}"
            started = time.perf_counter()
            reply = await client.post("/api/v1/messages", json={"sender": sender, "text": "转人工"})
            assert reply.json()["mode"] == "handoff", reply.text
            while conv not in arrived:
                if time.perf_counter() - started > 30:
                    raise TimeoutError(f"ticket of {conv} never reached the console")
                await asyncio.sleep(0.002)
            latencies.append(arrived[conv] - started)
        listener.cancel()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--gateway-url")
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    agent = f"bench{uuid.uuid4().hex[:6]}"
    with ExitStack() as stack:
        if args.gateway_url:
            gateway, redis_url = args.gateway_url, args.redis_url or "redis://127.0.0.1:6379/0"
        else:
            state = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            config = StackConfig(state_dir=state, redis_port=free_port(), rasa_port=free_port(),
                                 gateway_port=free_port())
            stack.enter_context(run_stack(config))
            gateway, redis_url = config.gateway_url, config.redis_url
        add_agent(redis_url, agent)
        latencies = asyncio.run(measure(gateway, args.n, agent))
    ms = sorted(x * 1000 for x in latencies)
    result = {"n": len(ms), "p50_ms": round(statistics.median(ms), 1),
              "p95_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.95))], 1),
              "max_ms": round(ms[-1], 1)}
    out = ROOT / "benchmarks" / "results" / "handoff_latency.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"转人工 → visible in console: p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, "
          f"max {result['max_ms']} ms over {result['n']} handoffs")


if __name__ == "__main__":
    main()
