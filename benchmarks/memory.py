"""Resident memory of the whole stack on the demo store, idle and after traffic.

Starts the stack on free ports (``kefu.stack.run_stack``), reads VmRSS of each process and
its children from /proc before and after a burst of questions, and writes
``benchmarks/results/memory.json``. Target: the whole stack within 2 GB.

    .venv/bin/python benchmarks/memory.py [--questions 200]
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kefu.stack import StackConfig, run_stack  # noqa: E402
from tests.helpers.shoppers import NO_RATE_LIMITS, Tokens  # noqa: E402

TARGET_MB = 2048
QUESTIONS = [
    "定金付了不想要了能退吗", "這雙鞋尺碼偏大嗎", "how long does shipping take?", "7天无理由退货要什么条件",
    "可以开发票吗", "会员积分怎么用", "顺丰包邮吗", "飞跃RX7适合扁平足吗", "can I return worn shoes?",
    "今天天气怎么样",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_mb(pid: int) -> float:
    """VmRSS of a process and all its descendants, in MB."""
    total = 0.0
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except FileNotFoundError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
        children = Path(f"/proc/{current}/task/{current}/children")
        if children.exists():
            todo.extend(int(c) for c in children.read_text().split())
    return total


def snapshot(pids: dict[str, int]) -> dict[str, float]:
    sizes = {name: round(rss_mb(pid), 1) for name, pid in pids.items()}
    sizes["total"] = round(sum(sizes.values()), 1)
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "memory.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state:
        config = StackConfig(state_dir=Path(state), redis_port=free_port(), rasa_port=free_port(),
                             gateway_port=free_port(), extra_env=NO_RATE_LIMITS)
        with run_stack(config):
            idle = snapshot(config.pids)
            started = time.perf_counter()
            tokens = Tokens()  # each conversation's token, shown after its first reply
            with httpx.Client(base_url=config.gateway_url, timeout=60) as client:
                for i in range(args.questions):
                    sender = f"mem-{i % 20}"
                    reply = client.post("/api/v1/messages", headers=tokens.headers(sender), json={
                        "sender": sender, "text": QUESTIONS[i % len(QUESTIONS)]})
                    reply.raise_for_status()
                    tokens.keep(sender, reply.json())
            elapsed = time.perf_counter() - started
            busy = snapshot(config.pids)
    result = {"idle_mb": idle, "after_traffic_mb": busy, "questions": args.questions,
              "seconds": round(elapsed, 1), "target_mb": TARGET_MB}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"{'process':<10} {'idle MB':>9} {'after MB':>9}")
    for name in idle:
        print(f"{name:<10} {idle[name]:>9} {busy[name]:>9}")
    print(f"{args.questions} questions in {elapsed:.1f}s; target: total within {TARGET_MB} MB")


if __name__ == "__main__":
    main()
