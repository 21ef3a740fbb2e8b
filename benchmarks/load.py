"""Peak load through the kefu gateway, side by side with the messages' essential work in the same run.

Simulated shoppers talk to ``POST /api/v1/messages`` concurrently, each running whole
conversations one message at a time (a shopper waits for the reply before typing again):

- questions from the demo store's question set (``knowledge/data/demo_questions.jsonl``),
  Chinese (simplified, traditional, typos, emoji) and English, plus greetings and thanks;
- most conversations have 1–20 turns, a few have 100+ (``--long``); shoppers start new short
  conversations until the long ones end, so concurrency stays constant; a shopper presses
  a quick reply it was offered (feedback, clarification), and when handed to a person it goes
  back to the bot with the ``/back_to_bot`` button (or leaves), as real shoppers do;
- every reply is timed; busy answers (bot/gateway/backpressure.py's ``BUSY_TEXT``) and errors are counted;
- before any phase, every text a shopper may type is embedded once (through the decide route), so
  the full path and the essential pair meet the same warm query-vector cache.

Then the same concurrency sends the same texts, in the same order, as each message's essential
work only: one Rasa ``/model/parse`` and, at the same time, one knowledge decision
(``POST /api/v1/knowledge/decide``) for a typed message; a button payload (``/feedback_helpful``,
``/choose_option{…}``) needs no decision, so it is only parsed. The full path is measured against
that pair: ``ratio_full_to_essential`` (target ≥ 0.6 at 16 shoppers). An optional overload phase
(``--overload-shoppers``) checks that the gateway answers every message (200, possibly "busy")
instead of failing.

When it starts the stack itself, it also reads each process's CPU time from /proc around every
phase: CPU milliseconds per message by process (gateway, rasa, redis, and the action server when
the stack has one), and from them the highest ratio this machine's cores allow
(``ratio_bound_from_cpu``: each phase is bound by cores ÷ its CPU per message and by one core ÷
Rasa's, Rasa being one single-threaded process).

Run against a running stack::

    .venv/bin/python benchmarks/load.py --gateway-url http://127.0.0.1:8000 \\
        --rasa-url http://127.0.0.1:5005 --rasa-token "$KEFU_RASA_TOKEN"

or let it start one on free ports (kefu.stack.run_stack; needs ``make model train``)::

    .venv/bin/python benchmarks/load.py --shoppers 20 --conversations 60

``--no-qa-checks`` starts that stack with quality control off in the gateway (``KEFU_QA_CHECKS``:
no rule check, anger score, alert or report counting), to measure what live QA costs; e.g. the
one-shopper p95 with and without it (benchmarks/results/load_qa_on.json, load_qa_off.json)::

    .venv/bin/python benchmarks/load.py --shoppers 1 --conversations 1 --long 0 \
        --overload-shoppers 0 --single-conversations 60 --no-qa-checks --out …

Writes benchmarks/results/load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.gateway.backpressure import BUSY_TEXT  # noqa: E402
from kefu.stack import StackConfig, run_stack  # noqa: E402
from knowledge.text import normalize  # noqa: E402
from tests.helpers.processes import free_port  # noqa: E402
from tests.helpers.shoppers import NO_RATE_LIMITS  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "load.json"
LOAD_GENERATOR = "load_generator"
QUESTIONS = ROOT / "knowledge" / "data" / "demo_questions.jsonl"
SMALL_TALK_ZH = ["你好", "在吗？", "谢谢", "好的，谢谢亲", "嗯嗯", "还有一个问题"]
SMALL_TALK_EN = ["hi", "hello there", "thanks!", "ok thank you", "one more question"]
BACK_TO_BOT = "/back_to_bot"


@dataclass
class Sample:
    """One message and its answer."""

    language: str
    seconds: float
    status: int  # HTTP status; 0 for a transport error
    busy: bool = False
    mode: str = ""
    outcome: str = ""  # answer | clarify | handoff | busy | other (greeting, fallback…)
    long: bool = False  # part of a 100+ turn conversation


@dataclass
class Phase:
    """Samples of one load phase."""

    name: str
    shoppers: int
    samples: list[Sample] = field(default_factory=list)
    turns: list[int] = field(default_factory=list)  # messages per finished conversation
    texts: list[str] = field(default_factory=list)  # every text sent, in order
    seconds: float = 0.0

    def report(self) -> dict[str, Any]:
        ok = [s for s in self.samples if s.status == 200]
        errors = Counter(str(s.status) for s in self.samples if s.status != 200)
        row: dict[str, Any] = {
            "shoppers": self.shoppers,
            "messages": len(self.samples),
            "conversations": len(self.turns),
            "turns_per_conversation": _spread(self.turns),
            "long_conversations": sum(1 for t in self.turns if t >= 100),
            "seconds": round(self.seconds, 2),
            "throughput_msgs_per_s": round(len(ok) / self.seconds, 2) if self.seconds else 0.0,
            "latency_ms": _latency([s.seconds for s in ok]),
            "latency_ms_by_language": {
                lang: _latency([s.seconds for s in ok if s.language == lang])
                for lang in ("zh", "en")},
            "latency_ms_in_long_conversations": _latency([s.seconds for s in ok if s.long]),
            "busy_answers": sum(1 for s in ok if s.busy),
            "outcomes": dict(Counter(s.outcome for s in ok)),
            "errors": dict(errors),
        }
        _print(self.name, row)
        return row


class Script:
    """What simulated shoppers say."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines()
                if line.strip()]
        texts = [str(r["text"]) for r in rows]
        self.english = [t for t in texts if _latin_share(t) > 0.6]
        self.chinese = [t for t in texts if _latin_share(t) <= 0.6]

    def short_length(self) -> int:
        """1–20 turns, most conversations short (mean about 6)."""
        return min(20, int(self.random.expovariate(1 / 6)) + 1)

    def long_length(self) -> int:
        return self.random.randint(100, 120)

    def language(self) -> str:
        return "en" if self.random.random() < 0.25 else "zh"

    def next_text(self, language: str, turn: int, offered: list[dict[str, str]]) -> str:
        """The shopper's next message, given the quick replies it was just offered."""
        options = [b for b in offered if b["payload"].startswith("/choose_option")]
        if options and self.random.random() < 0.7:  # most shoppers pick a clarification
            return str(self.random.choice(options)["payload"])
        if offered and self.random.random() < 0.25:  # some rate the answer
            return str(self.random.choice(offered)["payload"])
        if turn > 0 and self.random.random() < 0.12:
            return self.random.choice(SMALL_TALK_EN if language == "en" else SMALL_TALK_ZH)
        return self.random.choice(self.english if language == "en" else self.chinese)

    def typed_texts(self) -> list[str]:
        """Every text a shopper may type (questions and small talk; not button payloads)."""
        return [*self.chinese, *self.english, *SMALL_TALK_ZH, *SMALL_TALK_EN]


class Plan:
    """Hands out conversations: the long ones first, then short ones until the long ones are
    over and at least ``minimum`` conversations started, so every shopper stays busy to the end."""

    def __init__(self, script: Script, minimum: int, long: int) -> None:
        self._script = script
        self._minimum = minimum
        self._long_left = long
        self._long_running = 0
        self.started = 0

    def next(self) -> int | None:
        """Length of the next conversation; None when the phase is over."""
        if self._long_left:
            self._long_left -= 1
            self._long_running += 1
            length = self._script.long_length()
        elif self.started >= self._minimum and not self._long_running:
            return None
        else:
            length = self._script.short_length()
        self.started += 1
        return length

    def finished(self, length: int) -> None:
        if length >= 100:
            self._long_running -= 1


async def shopper_run(http: httpx.AsyncClient, script: Script, phase: Phase, plan: Plan,
                      run_id: str) -> None:
    """Run conversations one after another until the plan says stop."""
    while (length := plan.next()) is not None:
        sender = f"load-{run_id}-{phase.name.replace(' ', '-')}-{plan.started}"
        language = script.language()
        auth: dict[str, str] = {}  # the conversation's token, from its first reply
        offered: list[dict[str, str]] = []
        sent = 0
        for turn in range(length):
            text = script.next_text(language, turn, offered)
            sample, reply = await _post(http, phase, sender, text, language, auth)
            sample.long = length >= 100
            phase.samples.append(sample)
            sent += 1
            offered = [b for m in (reply or {}).get("messages", []) for b in m.get("buttons", [])]
            if sample.mode == "handoff":
                if length < 100 and script.random.random() < 0.2:
                    break  # left to wait for a person
                back, _ = await _post(http, phase, sender, BACK_TO_BOT, language, auth)
                back.outcome, back.long = "back_to_bot", length >= 100
                phase.samples.append(back)
                sent += 1
        phase.turns.append(sent)
        plan.finished(length)


async def _post(http: httpx.AsyncClient, phase: Phase, sender: str, text: str,
                language: str, auth: dict[str, str]) -> tuple[Sample, dict[str, Any] | None]:
    """One message; ``auth`` keeps the conversation's token header (set by its first reply)."""
    phase.texts.append(text)
    started = time.perf_counter()
    try:
        response = await http.post("/api/v1/messages", headers=auth,
                                   json={"sender": sender, "text": text})
    except httpx.HTTPError:
        return Sample(language, time.perf_counter() - started, 0), None
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        return Sample(language, elapsed, response.status_code), None
    body = response.json()
    if body.get("conversation_token"):
        auth["Authorization"] = f"Bearer {body['conversation_token']}"
    busy = any(m.get("text") == BUSY_TEXT for m in body.get("messages", []))
    mode = str(body.get("mode", ""))
    return Sample(language, elapsed, 200, busy=busy, mode=mode,
                  outcome=_outcome(body, busy, mode)), body


async def gateway_phase(url: str, script: Script, name: str, shoppers: int, conversations: int,
                        long: int, run_id: str) -> Phase:
    phase = Phase(name, shoppers)
    plan = Plan(script, conversations, long)
    limits = httpx.Limits(max_connections=shoppers + 8, max_keepalive_connections=shoppers + 8)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(shopper_run(http, script, phase, plan, run_id)
                               for _ in range(shoppers)))
        phase.seconds = time.perf_counter() - started
    return phase


async def essential_phase(gateway_url: str, rasa_url: str, token: str, texts: list[str],
                          shoppers: int) -> dict[str, Any]:
    """Each message's essential work at the same concurrency: a parse and a decision at once.

    ``texts`` are what the full path sent, in order, each normalised as the gateway sends it to
    Rasa and the knowledge decision. A button payload is only parsed (no decision follows one).
    """
    todo = list(reversed(texts))
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=2 * shoppers + 8,
                          max_keepalive_connections=2 * shoppers + 8)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        async def call(url: str, body: dict[str, Any], params: dict[str, str]) -> bool:
            try:
                response = await http.post(url, json=body, params=params)
            except httpx.HTTPError:
                errors["0"] += 1
                return False
            if response.status_code != 200:
                errors[str(response.status_code)] += 1
            return response.status_code == 200

        async def worker() -> None:
            while todo:
                text = todo.pop()
                payload = text.startswith("/")
                text = text if payload else normalize(text)
                started = time.perf_counter()
                calls = [call(f"{rasa_url}/model/parse", {"text": text}, {"token": token})]
                if not payload:
                    calls.append(call(f"{gateway_url}/api/v1/knowledge/decide",
                                      {"text": text[:2000]}, {}))
                if all(await asyncio.gather(*calls)):
                    latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(shoppers)))
        seconds = time.perf_counter() - started
    row = {"shoppers": shoppers, "requests": len(texts),
           "decisions": sum(1 for t in texts if not t.startswith("/")),
           "seconds": round(seconds, 2),
           "throughput_per_s": round(len(latencies) / seconds, 2) if seconds else 0.0,
           "latency_ms": _latency(latencies), "errors": dict(errors)}
    _print("essential pair", row)
    return row


class CpuMeter:
    """CPU time the stack's processes spent, from /proc (a stack this script started only).

    Each process of `run_stack` leads its own process group, so a group's total includes the
    threads and children of that process (Rasa's, uvicorn's).
    """

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = dict(pids) if Path("/proc/self/stat").exists() else {}
        self._tick = os.sysconf("SC_CLK_TCK") if self.pids else 100

    def read(self) -> dict[str, float]:
        """Seconds of CPU (user + system) per stack process so far, and this script's."""
        totals = dict.fromkeys(self.pids, 0.0)
        totals[LOAD_GENERATOR] = time.process_time()
        groups = {pid: name for name, pid in self.pids.items()}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # the process ended meanwhile
            name = groups.get(int(fields[2]))  # field 5: process group
            if name is not None:
                totals[name] += (int(fields[11]) + int(fields[12])) / self._tick
        return totals

    def per_message(self, before: dict[str, float], count: int) -> dict[str, float]:
        """Milliseconds of CPU per message since ``before``, by process and in total.

        ``load_generator`` is this script's own share (the simulated shoppers' HTTP clients), on
        the same cores but not part of ``total``.
        """
        if not self.pids or not count:
            return {}
        after = self.read()
        row = {name: round((after[name] - before[name]) * 1000 / count, 2)
               for name in after if name != LOAD_GENERATOR}
        row["total"] = round(sum(row.values()), 2)
        row[LOAD_GENERATOR] = round((after[LOAD_GENERATOR] - before[LOAD_GENERATOR]) * 1000
                                    / count, 2)
        return row


async def benchmark(args: argparse.Namespace, gateway_url: str, rasa_url: str,
                    pids: dict[str, int] | None = None) -> dict[str, Any]:
    script = Script(args.seed)
    run_id = f"{int(time.time())}"
    cpu = CpuMeter(pids or {})
    await _warm_up(gateway_url, rasa_url, args.rasa_token, script)
    single: dict[str, Any] = {}
    if args.single_conversations:
        before = cpu.read()
        one = await gateway_phase(gateway_url, script, "one shopper", 1,
                                  args.single_conversations, 0, f"{run_id}-one")
        single = {**one.report(), "cpu_ms_per_message": cpu.per_message(before, len(one.samples))}
    before = cpu.read()
    gateway = await gateway_phase(gateway_url, script, "peak", args.shoppers, args.conversations,
                                  args.long, run_id)
    peak = {**gateway.report(), "cpu_ms_per_message": cpu.per_message(before, len(gateway.samples))}
    before = cpu.read()
    essential = await essential_phase(gateway_url, rasa_url, args.rasa_token, gateway.texts,
                                      args.shoppers)
    essential["cpu_ms_per_message"] = cpu.per_message(before, essential["requests"])
    result: dict[str, Any] = {"gateway": peak, "essential_pair": essential}
    if single:
        result["gateway_one_shopper"] = single
    if essential["throughput_per_s"]:
        result["ratio_full_to_essential"] = round(
            peak["throughput_msgs_per_s"] / essential["throughput_per_s"], 3)
        print(f"full path / essential pair throughput at {args.shoppers} shoppers: "
              f"{result['ratio_full_to_essential']}")
    full, pair = peak["cpu_ms_per_message"], essential["cpu_ms_per_message"]
    if full.get("total") and pair.get("total"):  # 0: too few messages for a CPU tick
        result["ratio_bound_from_cpu"] = round(_cpu_bound(full) / _cpu_bound(pair), 3)
        print(f"CPU ms per message: full path {full}; essential pair {pair}; "
              f"ratio bound {result['ratio_bound_from_cpu']}")
    if args.overload_shoppers:
        overload = await gateway_phase(gateway_url, script, "overload", args.overload_shoppers,
                                       args.overload_shoppers * 2, 0, run_id)
        result["overload"] = overload.report()
    return result


def _cpu_bound(cpu_ms: dict[str, float]) -> float:
    """Messages per second a phase's CPU allows: cores ÷ its total, one core ÷ Rasa's share."""
    cores = os.cpu_count() or 1
    bound = cores * 1000 / cpu_ms["total"]
    if cpu_ms.get("rasa"):
        bound = min(bound, 1000 / cpu_ms["rasa"])
    return bound


async def _warm_up(gateway_url: str, rasa_url: str, token: str, script: Script) -> None:
    """Load what the first messages would, and embed every text the shoppers may type.

    The gateway keeps recent questions' vectors (``KEFU_QUERY_VECTOR_CACHE``). Without this, the
    full path would embed each text the first time a shopper typed it and the essential pair,
    replaying the same texts afterwards, would find every vector ready: the order of the phases
    would favour the pair. Embedded up front, both phases meet the same cache.
    """
    async with httpx.AsyncClient(timeout=120) as http:
        for text in ("你好", "怎么退货", "hello"):
            await http.post(f"{gateway_url}/api/v1/messages",
                            json={"sender": f"load-warmup-{time.time_ns()}", "text": text})
            await http.post(f"{rasa_url}/model/parse", json={"text": text},
                            params={"token": token})
        todo = sorted({normalize(t) for t in script.typed_texts()})

        async def embed() -> None:
            while todo:
                await http.post(f"{gateway_url}/api/v1/knowledge/decide",
                                json={"text": todo.pop()[:2000]})

        await asyncio.gather(*(embed() for _ in range(8)))


@contextlib.contextmanager
def _stack(args: argparse.Namespace) -> Iterator[tuple[str, str, dict[str, int]]]:
    if args.gateway_url:
        yield args.gateway_url.rstrip("/"), args.rasa_url.rstrip("/"), {}
        return
    with tempfile.TemporaryDirectory(prefix="kefu-load-") as tmp:
        config = StackConfig(
            state_dir=Path(tmp), redis_port=free_port(), rasa_port=free_port(),
            gateway_port=free_port(), rasa_token=args.rasa_token,
            extra_env={**NO_RATE_LIMITS,  # every simulated shopper comes from 127.0.0.1
                       "KEFU_RASA_MAX_IN_FLIGHT": str(args.max_in_flight),
                       "KEFU_EMBEDDING_INT8": "true" if args.int8 else "false",
                       "KEFU_QA_CHECKS": "true" if args.qa_checks else "false",
                       **({} if args.query_cache is None
                          else {"KEFU_QUERY_VECTOR_CACHE": str(args.query_cache)})})
        print(f"starting a stack in {tmp} (logs in {tmp}/logs) …", flush=True)
        with run_stack(config) as running:
            args.rasa_token = running.rasa_token  # generated at set-up (.env) unless given
            yield running.gateway_url, running.rasa_url, running.pids


def _outcome(body: dict[str, Any], busy: bool, mode: str) -> str:
    payloads = [b.get("payload", "") for m in body.get("messages", [])
                for b in m.get("buttons", [])]
    if busy:
        return "busy"
    if mode == "handoff":
        return "handoff"
    if any(p.startswith("/choose_option") for p in payloads):
        return "clarify"
    if "/feedback_helpful" in payloads:
        return "answer"
    return "other"


def _latency(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {}
    ms = sorted(s * 1000 for s in seconds)

    def pct(p: float) -> float:
        return round(ms[min(len(ms) - 1, int(len(ms) * p))], 1)

    return {"p50": round(statistics.median(ms), 1), "p95": pct(0.95), "p99": pct(0.99),
            "max": round(ms[-1], 1), "mean": round(statistics.fmean(ms), 1)}


def _spread(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    return {"min": min(values), "max": max(values), "mean": round(statistics.fmean(values), 1)}


def _latin_share(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    return sum(1 for c in letters if re.match(r"[A-Za-z]", c)) / len(letters) if letters else 0.0


def _print(name: str, row: dict[str, Any]) -> None:
    latency = row.get("latency_ms") or {}
    rate = row.get("throughput_msgs_per_s", row.get("throughput_per_s"))
    count = row.get("messages", row.get("requests"))
    print(f"{name:<18} n={count:>5}  {rate:>7.2f}/s  p50 {latency.get('p50', 0):>8.1f} ms  "
          f"p95 {latency.get('p95', 0):>8.1f} ms  busy {row.get('busy_answers', '-')}  "
          f"errors {row.get('errors')}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--gateway-url", help="running gateway (default: start a stack)")
    parser.add_argument("--rasa-url", default="http://127.0.0.1:5005")
    parser.add_argument("--rasa-token", default=os.environ.get("KEFU_RASA_TOKEN", ""))
    parser.add_argument("--shoppers", type=int, default=16, help="concurrent shoppers")
    parser.add_argument("--conversations", type=int, default=60,
                        help="at least this many conversations per phase")
    parser.add_argument("--long", type=int, default=2, help="conversations with 100+ turns")
    parser.add_argument("--single-conversations", type=int, default=40,
                        help="conversations of the one-shopper-at-a-time phase (0: skip it)")
    parser.add_argument("--query-cache", type=int, default=None,
                        help="KEFU_QUERY_VECTOR_CACHE of a stack this script starts (0: off)")
    parser.add_argument("--overload-shoppers", type=int, default=64,
                        help="concurrent shoppers of the overload phase (0: skip it)")
    parser.add_argument("--max-in-flight", type=int, default=16,
                        help="KEFU_RASA_MAX_IN_FLIGHT of a stack this script starts")
    parser.add_argument("--int8", action=argparse.BooleanOptionalAction, default=True,
                        help="KEFU_EMBEDDING_INT8 of a stack this script starts (default: on, "
                             "as served)")
    parser.add_argument("--qa-checks", action=argparse.BooleanOptionalAction, default=True,
                        help="KEFU_QA_CHECKS of a stack this script starts (default: on, as "
                             "served)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.long > args.conversations:
        parser.error("--long cannot exceed --conversations")
    with _stack(args) as (gateway_url, rasa_url, pids):
        result = asyncio.run(benchmark(args, gateway_url, rasa_url, pids))
    result["run"] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
        "stack": "external" if args.gateway_url else "started by benchmarks/load.py",
        "shoppers": args.shoppers, "conversations": args.conversations, "long": args.long,
        "overload_shoppers": args.overload_shoppers, "seed": args.seed,
        "single_conversations": args.single_conversations, "query_vector_cache": args.query_cache,
        "kefu_rasa_max_in_flight": None if args.gateway_url else args.max_in_flight,
        "embedding_int8": None if args.gateway_url else args.int8,
        "qa_checks": None if args.gateway_url else args.qa_checks,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
