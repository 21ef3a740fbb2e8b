"""``kefu kb …`` and ``kefu eval``: validate, publish, search, list and roll back knowledge bases.

Every command is a thin wrapper over the loader, the store, the service and the evaluation.
Problems go to stderr one per line and the exit code is 2; results go to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO, TypeVar

from knowledge.curation.commands import default_author, guard, publish_file
from knowledge.errors import NoLiveVersion, ValidationFailed
from knowledge.settings import KnowledgeSettings, get_settings

T = TypeVar("T")
EXIT_PROBLEM = 2


def register(subparsers: Any) -> None:
    """Add ``kb`` (with its sub-commands) and ``eval`` to the ``kefu`` parser."""
    kb = subparsers.add_parser("kb", help="knowledge base: validate, publish, search, versions")
    commands = kb.add_subparsers(dest="kb_command", required=True)

    validate = commands.add_parser("validate", help="check a YAML/CSV/XLSX knowledge base")
    validate.add_argument("file", type=Path)
    validate.set_defaults(func=guard(_validate))

    publish = commands.add_parser("publish", help="validate, then publish as the live version")
    publish.add_argument("file", type=Path)
    publish.add_argument("--author", default=default_author())
    publish.add_argument("--note", default="")
    publish.add_argument("--override-reason", default=None,
                         help="publish even though the test gate refuses (kept in the audit log)")
    publish.set_defaults(func=guard(_publish))

    search = commands.add_parser("search", help="ranked candidates and the decision for a question")
    search.add_argument("question")
    search.add_argument("--at", type=_time, default=None, help="as-of time (ISO 8601; default now)")
    search.add_argument("--k", type=int, default=5)
    search.add_argument("--kb", type=Path, default=None, help="search this file, not the live one")
    search.set_defaults(func=guard(_search))

    versions = commands.add_parser("versions", help="list published versions, newest first")
    versions.set_defaults(func=guard(_versions))

    rollback = commands.add_parser("rollback", help="make an older version live again")
    rollback.add_argument("version")
    rollback.add_argument("--author", default=default_author())
    rollback.add_argument("--note", default="")
    rollback.set_defaults(func=guard(_rollback))

    template = commands.add_parser("template", help="write a starter file (header + one example)")
    template.add_argument("file", type=Path, help="target; the extension picks the format")
    template.set_defaults(func=guard(_template))

    evaluate = subparsers.add_parser("eval", help="measure the decision on labelled questions")
    evaluate.add_argument("--kb", type=Path, required=True, help="knowledge base file")
    evaluate.add_argument("--questions", type=Path, required=True,
                          help='JSONL: {"text", "expected": id|null, "at"?} per line')
    evaluate.add_argument("--json", type=Path, default=None, help="write the full report here")
    evaluate.add_argument("--now", type=_time, default=None,
                          help="time for lines without 'at' (default: now)")
    evaluate.set_defaults(func=guard(_eval))


# --- plumbing ---------------------------------------------------------------------------------


def _time(value: str) -> datetime:
    from knowledge.loader import parse_datetime

    try:
        return parse_datetime(value, default_tz=get_settings().tz)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _with_redis(action: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``action(redis)`` with a client of the configured Redis, then close it."""
    from kefu.redis import async_client

    async def main() -> T:
        redis = async_client(get_settings().redis_url)
        try:
            return await action(redis)
        finally:
            await redis.aclose()

    return asyncio.run(main())


def _with_store(action: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``action(store)`` against the configured Redis."""
    from knowledge.store import KnowledgeStore

    return _with_redis(lambda redis: action(KnowledgeStore(redis)))


def _local(moment: datetime, settings: KnowledgeSettings) -> str:
    return moment.astimezone(settings.tz).isoformat(timespec="seconds")


# --- commands ---------------------------------------------------------------------------------


def _validate(args: argparse.Namespace) -> int:
    from knowledge.errors import Problem
    from knowledge.loader import load_kb

    notes: list[Problem] = []
    kb = load_kb(args.file, notes=notes)
    for note in notes:
        print(f"note: {note}")
    campaigns = sum(1 for e in kb.entries if e.campaign)
    print(f"{args.file}: ok, {len(kb.entries)} entries ({campaigns} campaign), "
          f"{len(kb.tests)} tests")
    return 0


def _publish(args: argparse.Namespace) -> int:

    note = args.note or f"published from {args.file.name}"
    return publish_file(args.file, author=args.author, note=note,
                        override_reason=args.override_reason)


def _search(args: argparse.Namespace) -> int:
    from knowledge.service import KnowledgeService

    settings = get_settings()
    index = _index_from_file(args.kb, settings) if args.kb else _live_index(settings)
    service = KnowledgeService(index, settings=settings)
    decision = service.decide(args.question, at=args.at)
    candidates = service.search(args.question, at=decision.at, k=args.k)
    source = args.kb or f"live version {index.version_id}"
    print(f"{source}, as of {_local(decision.at, settings)}")
    print(f"{'#':>2}  {'entry':<28} {'score':>6}  signals / matched text")
    for rank, c in enumerate(candidates, start=1):
        signals = " ".join(f"{k}={v:.3f}" for k, v in c.signals.items())
        print(f"{rank:>2}  {c.entry_id:<28} {c.score:>6.3f}  {signals}")
        print(f"{'':>39}{c.matched}")
    chosen = decision.entry.entry_id if decision.entry else ", ".join(o.entry_id
                                                                      for o in decision.options)
    print(f"decision: {decision.kind.value} {chosen}".rstrip() + f" ({decision.reason})")
    return 0


def _index_from_file(path: Path, settings: KnowledgeSettings) -> Any:
    from knowledge.loader import load_kb
    from knowledge.service import build_index, shared_encoders

    kb = load_kb(path)
    encoder, second = shared_encoders(settings)
    return build_index(kb, encoder, second)


def _live_index(settings: KnowledgeSettings) -> Any:
    from knowledge.runtime import KnowledgeRuntime
    from knowledge.service import shared_encoders

    encoders = shared_encoders(settings)

    async def build(redis: Any) -> Any:
        runtime = KnowledgeRuntime(redis, settings, encoders=encoders)
        live = await runtime.store.live()
        if live is None:
            raise NoLiveVersion()
        return await runtime.build(live[1], info=live[0])  # uses the shared embedding cache

    return _with_redis(build)


def _versions(args: argparse.Namespace) -> int:
    settings = get_settings()

    async def read(store: Any) -> tuple[str | None, list[Any]]:
        return await store.live_id(), await store.versions()

    live_id, versions = _with_store(read)
    if not versions:
        print("no versions published yet")
        return 0
    print(f"   {'version':<28} {'created':<25} {'author':<12} {'entries':>7}  note")
    for v in versions:
        mark = "*" if v.id == live_id else " "
        print(f" {mark} {v.id:<28} {_local(v.created_at, settings):<25} {v.author:<12} "
              f"{v.entries:>7}  {v.note}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    note = args.note
    info = _with_store(lambda store: store.rollback(args.version, author=args.author, note=note))
    print(f"{info.id} ({info.entries} entries, published {info.created_at:%Y-%m-%d %H:%M} by "
          f"{info.author}) is live again")
    return 0


def _template(args: argparse.Namespace) -> int:
    from knowledge.errors import Problem
    from knowledge.loader import format_of, write_template

    fmt = format_of(args.file.name)
    if fmt is None:
        raise ValidationFailed([Problem(str(args.file), "file", None,
                                        "unsupported extension; use .yaml, .csv or .xlsx")])
    write_template(fmt, args.file)
    print(f"wrote {args.file} ({fmt.value} template with one example entry)")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from knowledge.curation.evaluation import evaluate, format_report, load_questions
    from knowledge.loader import load_kb
    from knowledge.service import KnowledgeService, build_index, shared_encoders

    settings = get_settings()
    kb = load_kb(args.kb)
    questions = load_questions(args.questions, known_ids={e.id for e in kb.entries})
    started = time.monotonic()
    print(f"building and calibrating {args.kb} ({len(kb.entries)} entries)…", file=sys.stderr,
          flush=True)
    index = build_index(kb, *shared_encoders(settings))
    print(f"ready in {time.monotonic() - started:.0f}s; asking {len(questions)} questions",
          file=sys.stderr, flush=True)
    service = KnowledgeService(index, settings=settings)
    report = evaluate(service, questions, now=args.now or service.now(), kb=str(args.kb),
                      questions_name=str(args.questions), progress=ProgressBar(sys.stderr))
    print(format_report(report))
    if args.json is not None:
        args.json.write_text(report.model_dump_json(indent=2), encoding="utf-8")
        print(f"report written to {args.json}")
    return 0


class ProgressBar:
    """A progress bar with an ETA on a terminal; a line every 10% elsewhere (logs, pipes)."""

    WIDTH = 30

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._started = time.monotonic()
        self._shown = -1

    def __call__(self, done: int, total: int) -> None:
        """Report ``done`` of ``total``."""
        step = done * 10 // max(1, total)
        if not self._tty and step == self._shown and done < total:
            return
        self._shown = step
        elapsed = time.monotonic() - self._started
        eta = elapsed / done * (total - done) if done else 0.0
        filled = self.WIDTH * done // max(1, total)
        line = (f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total} "
                f"{elapsed:.0f}s, ETA {eta:.0f}s")
        end = "\n" if done == total or not self._tty else ""
        self._stream.write(("\r" if self._tty else "") + line + end)
        self._stream.flush()
