"""Faults under load: lost and empty replies while a process of the stack is killed (target 0).

Starts the whole stack the way ``make run`` does (supervisord, :func:`kefu.stack.run_stack`) on
free ports, or uses a running one (``--gateway-url``, ``--state-dir`` of its supervisord). For
each process named, 16 simulated shoppers (:mod:`tests.helpers.shoppers`: demo questions, a
quarter of the conversations ending with 转人工/a complaint, resending as the widget does) talk
to the gateway; after a few seconds the process gets SIGKILL, supervisord restarts it, the
load goes on for 20 s more (:func:`tests.helpers.faults.kill_under_load`). Per fault it reports
what the shoppers saw: messages sent, 5xx, empty replies, connection errors (the gateway
itself dead), replies "稍等，正在重试" that asked to resend, messages answered but not in
Redis afterwards (lost), requests for a person without a ticket, seconds until the process was
back and until readyz said every part was ready. Writes ``benchmarks/results/faults.json``.

    .venv/bin/python benchmarks/faults.py [--faults redis rasa gateway sweeper] [--shoppers 16]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kefu.stack import StackConfig, run_stack  # noqa: E402
from tests.helpers.faults import FaultRun, kill_under_load  # noqa: E402
from tests.helpers.processes import free_port  # noqa: E402
from tests.helpers.shoppers import NO_RATE_LIMITS  # noqa: E402

FAULTS = ("redis", "rasa", "gateway", "sweeper")


@contextlib.contextmanager
def _stack(args: argparse.Namespace) -> Iterator[StackConfig]:
    if args.gateway_url:  # a running stack: its ports and its supervisord's state directory
        port = int(args.gateway_url.rstrip("/").rsplit(":", 1)[1])
        yield StackConfig(state_dir=args.state_dir, gateway_port=port,
                          redis_port=args.redis_port, start_redis=False)
        return
    with tempfile.TemporaryDirectory(prefix="kefu-faults-") as tmp:
        config = StackConfig(state_dir=Path(tmp), redis_port=free_port(), rasa_port=free_port(),
                             gateway_port=free_port(), extra_env=dict(NO_RATE_LIMITS))
        print(f"starting a stack in {tmp} …", flush=True)
        with run_stack(config) as running:
            yield running


def _row(run: FaultRun) -> dict[str, object]:
    t = run.tally
    latencies = sorted(t.latencies)
    return {
        "process": run.process, "sent": t.sent, "replies": t.replies,
        "server_errors": t.server_errors, "statuses": {str(k): v for k, v in t.status.items()},
        "empty": t.empty, "connection_errors": t.connection_errors, "resent": t.not_kept, "started_over": t.started_over,
        "unanswered": t.unanswered, "lost": len(run.kept.lost_messages),
        "asked_for_a_person": len(t.asked_for_a_person),
        "without_ticket": len(run.kept.missing_tickets),
        "back_seconds": round(run.back_seconds, 1), "ready_seconds": round(run.ready_seconds, 1),
        "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))] * 1000) if latencies else None,
    }


async def _measure(stack: StackConfig, faults: list[str], shoppers: int) -> list[dict[str, object]]:
    rows = []
    for process in faults:
        run = await kill_under_load(stack, process, shoppers=shoppers)
        print(run.summary(), flush=True)
        rows.append(_row(run))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faults", nargs="+", default=list(FAULTS), choices=FAULTS)
    parser.add_argument("--shoppers", type=int, default=16)
    parser.add_argument("--gateway-url", help="a running stack (started with its rate limits off)")
    parser.add_argument("--state-dir", type=Path, default=ROOT / "var",
                        help="the running stack's state directory (its supervisord socket)")
    parser.add_argument("--redis-port", type=int, default=6379)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "faults.json")
    args = parser.parse_args()
    started = time.perf_counter()
    with _stack(args) as stack:
        rows = asyncio.run(_measure(stack, args.faults, args.shoppers))
    result = {"shoppers": args.shoppers, "faults": rows,
              "seconds": round(time.perf_counter() - started, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    print(f"\n{'fault':<9} {'sent':>5} {'5xx':>4} {'empty':>5} {'lost':>4} {'no ticket':>9} "
          f"{'resent':>6} {'conn err':>8} {'back s':>6} {'ready s':>7}")
    for r in rows:
        print(f"{r['process']:<9} {r['sent']:>5} {r['server_errors']:>4} {r['empty']:>5} "
              f"{r['lost']:>4} {r['without_ticket']:>9} {r['resent']:>6} "
              f"{r['connection_errors']:>8} {r['back_seconds']:>6} {r['ready_seconds']:>7}")
    print("target: 0 5xx, 0 empty, 0 lost, 0 without a ticket; back within 15 s")


if __name__ == "__main__":
    main()
