"""How long ``make run`` takes to be ready when nothing needs installing, preparing or training.

Runs ``make setup model train`` first (untimed: it installs, prepares or trains whatever is
missing), then times ``make run`` from launch to its "kefu is running" banner, which it prints once
the gateway's ``/readyz`` says Redis, Rasa and the knowledge index are ready. Each start is made
twice per run: a first one on an empty Redis (the demo store is published and calibrated), then one
on the Redis the first left (a restart). Ports are free ones (``KEFU_PORT``, ``KEFU_RASA_URL``,
``KEFU_REDIS_URL``), state in a temporary directory. Target: ready within 20 s.

    .venv/bin/python benchmarks/startup.py [--runs 2]

Writes benchmarks/results/startup.json: seconds to the banner, and when each process said it was
ready (kefu.stack's log lines), per start.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers.processes import free_port  # noqa: E402

TARGET_SECONDS = 20.0
BANNER = "kefu is running"
READY = re.compile(r"(\w+) ready \(pid")


def start_once(env: dict[str, str], timeout: float) -> dict[str, Any]:
    """One ``make run``: seconds to the banner and to each process's "ready" line, then Ctrl-C."""
    started = time.perf_counter()
    proc = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    ready: dict[str, float] = {}
    seconds: float | None = None
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            now = round(time.perf_counter() - started, 2)
            if (match := READY.search(line)) is not None:
                ready[match.group(1)] = now
            if BANNER in line:
                seconds = now
                break
            if now > timeout:
                break
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if seconds is None:
        raise RuntimeError(f"`make run` printed no banner within {timeout:.0f}s")
    return {"seconds_to_ready": seconds, "process_ready_at": ready}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=2, help="starts on an empty Redis, each "
                        "followed by a restart")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks" / "results" / "startup.json")
    args = parser.parse_args(argv)
    subprocess.run(["make", "--no-print-directory", "setup", "model", "train"], cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL)
    starts: list[dict[str, Any]] = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="kefu-startup-") as tmp:
            redis_port = free_port()
            env = {**os.environ, "KEFU_PORT": str(free_port()),
                   "KEFU_RASA_URL": f"http://127.0.0.1:{free_port()}",
                   "KEFU_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                   "KEFU_STATE_DIR": tmp}
            for kind in ("empty redis", "restart"):
                row = {"run": run + 1, "start": kind, **start_once(env, args.timeout)}
                print(f"run {row['run']} {kind:<11} ready in {row['seconds_to_ready']:>6.2f} s  "
                      f"{row['process_ready_at']}", flush=True)
                starts.append(row)
    result = {"starts": starts, "target_seconds": TARGET_SECONDS,
              "at": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
