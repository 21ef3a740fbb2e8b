"""What the two command modules share, so neither imports the other.

`knowledge.curation.cli` (``kefu kb validate|publish|search|…``, ``kefu eval``) and
`knowledge.curation.admin_cli` (``kefu kb diff|check|…``) both turn the package's errors into
stderr lines and exit code 2 (`guard`), and both publish through the test gate the admin page uses
(`publish_file`, `report_publish`).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from knowledge.errors import KnowledgeError, ValidationFailed
from knowledge.settings import KnowledgeSettings, get_settings

EXIT_PROBLEM = 2


def default_author() -> str:
    """Who runs the command (recorded as the author of a publish or rollback)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def guard(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn the package's errors into stderr lines and exit code 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except ValidationFailed as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            print(f"{len(exc.problems)} problem(s); nothing was changed", file=sys.stderr)
        except KnowledgeError as exc:
            print(f"error: {exc}", file=sys.stderr)
        except RedisError as exc:
            print(f"error: Redis at {get_settings().redis_url}: {exc}", file=sys.stderr)
        except OSError as exc:
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_PROBLEM

    return run


async def admin_service(settings: KnowledgeSettings, redis: Any, *, encoders: bool) -> Any:
    """An admin service over ``redis``; ``encoders``: load the model (to build indexes)."""
    from knowledge.curation.admin import AdminService
    from knowledge.runtime import KnowledgeRuntime
    from knowledge.service import shared_encoders

    loaded = await asyncio.to_thread(shared_encoders, settings) if encoders else None
    runtime = KnowledgeRuntime(settings, redis=redis, encoders=loaded)
    return AdminService(runtime, redis, encoder=loaded[0] if loaded else None)


def publish_file(path: Path, *, author: str, note: str, override_reason: str | None) -> int:
    """``kefu kb publish``: validate, run the test gate, publish; prints the new version.

    The model is loaded only when either version has test questions.
    """
    from kefu.redis import async_client
    from knowledge.curation.review import union_tests
    from knowledge.loader import load_kb
    from knowledge.store import KnowledgeStore

    kb = load_kb(path)
    settings = get_settings()

    async def publish() -> Any:
        redis = async_client(settings.redis_url)
        try:
            live = await KnowledgeStore(redis).live()
            tests = union_tests(live[1] if live else None, kb)
            admin = await admin_service(settings, redis, encoders=bool(tests))
            return await admin.publish_kb(kb, author=author, note=note,
                                          override_reason=override_reason)
        finally:
            await redis.aclose()

    return report_publish(lambda: asyncio.run(publish()))


def report_publish(publish: Callable[[], Any]) -> int:
    """Run ``publish``; print the new version, or the gate report when the gate refused."""
    from knowledge.errors import GateRefused

    try:
        result = publish()
    except GateRefused as refused:
        print_gate(refused.report, file=sys.stderr)
        raise
    info = result.version
    print(f"published {info.id} ({info.entries} entries) by {info.author}; it is live")
    if result.gate.questions:
        print(result.gate.summary + (" (overridden)" if result.overridden else ""))
    return 0


def print_gate(report: Any, file: Any = None) -> None:
    """The test gate's summary and every question's outcome, live against new."""
    out = file or sys.stdout
    print(f"test gate: {report.summary}", file=out)
    for q in report.questions:
        live = q.live.entry_id or q.live.kind.value if q.live else "-"
        draft = q.draft.entry_id or q.draft.kind.value
        marks = ("✓" if q.live and q.live.correct else "✗", "✓" if q.draft.correct else "✗")
        print(f"  {q.at:%Y-%m-%d %H:%M} «{q.text}» expect {q.expected or '(no answer)'}: "
              f"live {live} {marks[0]}, new {draft} {marks[1]}", file=out)


