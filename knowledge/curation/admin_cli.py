"""``kefu kb diff|check|calendar|audit|topics|draft``: the knowledge admin from scripts and CI.

Thin wrappers over :class:`~knowledge.curation.admin.AdminService`, registered into the ``kb``
command that `knowledge.curation.cli` creates. ``kefu kb publish`` and ``kefu kb publish-draft``
publish through `knowledge.curation.commands`, so the command line obeys the same test gate as the
web page.

Exit codes: 0 fine, 1 ``check`` found the gate would refuse, 2 a problem (printed on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from knowledge.curation.commands import (
    admin_service,
    default_author,
    guard,
    print_gate,
    report_publish,
)
from knowledge.settings import KnowledgeSettings, get_settings

T = TypeVar("T")
EXIT_GATE_REFUSED = 1


def register(subparsers: Any) -> None:
    """Add the admin sub-commands to ``kefu kb`` (created by `knowledge.curation.cli.register`)."""
    commands = _kb_commands(subparsers)

    diff = commands.add_parser("diff", help="what publishing FILE would change (entries, tests)")
    diff.add_argument("file", type=Path)
    diff.add_argument("--merge", action="store_true",
                      help="FILE holds only some entries: merge them into the live version")
    diff.add_argument("--against", default=None, help="a version id instead of the live one")
    diff.set_defaults(func=guard(_diff))

    check = commands.add_parser(
        "check", help="review FILE for CI: diff, close questions, test gate (exit 1: refused)")
    check.add_argument("file", type=Path)
    check.add_argument("--merge", action="store_true", help="merge FILE into the live version")
    check.add_argument("--all-pairs", action="store_true",
                       help="list every close question pair, not only those this change touches")
    check.set_defaults(func=guard(_check))

    cal = commands.add_parser("calendar", help="when campaign entries go live and expire")
    cal.add_argument("--version", default=None, help="a version id (default: the live one)")
    cal.set_defaults(func=guard(_calendar))

    audit = commands.add_parser("audit", help="publishes, rollbacks and gate overrides")
    audit.add_argument("--limit", type=int, default=20)
    audit.set_defaults(func=guard(_audit))

    topics = commands.add_parser("topics", help="escalated questions grouped by meaning")
    topics.add_argument("--min", type=int, default=2, dest="min_conversations",
                        help="smallest number of conversations per topic (default 2)")
    topics.add_argument("--json", action="store_true", help="print JSON")
    topics.set_defaults(func=guard(_topics))

    draft = commands.add_parser(
        "draft", help="write the live knowledge base plus an entry drafted from a topic")
    draft.add_argument("topic_id")
    draft.add_argument("--entry", default=None,
                       help="add the topic's examples as variants of this existing entry")
    draft.add_argument("--id", default=None, dest="new_id", help="id of the new entry")
    draft.add_argument("--question", default=None)
    draft.add_argument("--answer", default=None, help="default: the agents' most relevant reply")
    draft.add_argument("--category", default=None)
    draft.add_argument("--out", type=Path, default=None, help="also write the draft as YAML")
    draft.add_argument("--author", default=default_author())
    draft.set_defaults(func=guard(_draft))

    publish = commands.add_parser(
        "publish-draft", help="publish a reviewed draft (from `kb draft`, `kb check` or the web)")
    publish.add_argument("draft_id")
    publish.add_argument("--author", default=default_author())
    publish.add_argument("--note", default="")
    publish.add_argument("--override-reason", default=None,
                         help="publish even though the test gate refuses (kept in the audit log)")
    publish.set_defaults(func=guard(_publish_draft))


def _kb_commands(subparsers: Any) -> Any:
    """The sub-command action of ``kefu kb`` (argparse keeps it among the parser's actions)."""
    kb = subparsers.choices.get("kb")
    if kb is None:
        kb = subparsers.add_parser("kb", help="knowledge base")
        return kb.add_subparsers(dest="kb_command", required=True)
    return next(a for a in kb._actions if isinstance(a, argparse._SubParsersAction))


def _run(action: Callable[[Any], Awaitable[T]], *, encoders: bool = False) -> T:
    """Run ``action(admin)`` with an admin service over the configured Redis.

    ``encoders``: load the model (needed to build indexes or group escalations).
    """
    from kefu.redis import async_client

    settings = get_settings()

    async def main() -> T:
        redis = async_client(settings.redis_url)
        try:
            return await action(await admin_service(settings, redis, encoders=encoders))
        finally:
            await redis.aclose()

    return asyncio.run(main())


# --- commands ---------------------------------------------------------------------------------


def _publish_draft(args: argparse.Namespace) -> int:
    return report_publish(lambda: _run(
        lambda admin: admin.publish(args.draft_id, author=args.author, note=args.note,
                                    override_reason=args.override_reason), encoders=True))


async def _read(path: Path, merge: bool, admin: Any) -> Any:
    """The knowledge base of ``path``, merged into the live one with ``merge``."""
    from knowledge.curation.admin import merged
    from knowledge.loader import load_kb

    kb = load_kb(path)
    live = await admin.store.live() if merge else None
    return merged(live[1], kb) if live else kb


def _diff(args: argparse.Namespace) -> int:
    from knowledge.curation.diff import diff_kbs, render_diff

    async def diff(admin: Any) -> Any:
        kb = await _read(args.file, args.merge, admin)
        if args.against:
            return diff_kbs((await admin.store.get(args.against))[1], kb,
                            base_version=args.against)
        return await admin.diff_against_live(kb)

    print(render_diff(_run(diff)))
    return 0


def _check(args: argparse.Namespace) -> int:
    from knowledge.curation.diff import render_diff

    async def review(admin: Any) -> Any:
        kb = await _read(args.file, args.merge, admin)
        draft = await admin.save_draft(kb, filename=args.file.name, author=default_author(),
                                       source="merge" if args.merge else "upload")
        return await admin.review(draft.id)

    result = _run(review, encoders=True)
    print(render_diff(result.diff))
    t = result.thresholds
    print(f"policy: answer at confidence {t.answer:.2f}, clarify at {t.clarify:.2f}; {t.advice}")
    changed = [p for p in result.close_pairs if p.changed]
    print(f"close questions in this change: {len(changed)} "
          f"({len(result.close_pairs) - len(changed)} more already in the knowledge base)")
    for p in changed if not args.all_pairs else result.close_pairs:
        print(f"  {p.severity.value:<8} {p.entry_id} «{p.text}» ~ {p.other_id} «{p.other_text}» "
              f"score {p.score:.3f} (own {p.own_score:.3f})")
    print_gate(result.gate)
    print(f"draft {result.draft.id} kept for review on the admin page")
    return 0 if result.gate.passed else EXIT_GATE_REFUSED


def _calendar(args: argparse.Namespace) -> int:
    settings = get_settings()
    windows = _run(lambda admin: admin.calendar(version_id=args.version))
    if not windows:
        print("no time-limited entries")
    for w in windows:
        print(f"{w.campaign or '(no campaign)'}: {_when(w.starts, settings)} → "
              f"{_when(w.ends, settings)} [{w.status.value}]")
        for item in w.entries:
            print(f"  {item.entry_id:<28} {_when(item.valid_from, settings)} → "
                  f"{_when(item.valid_until, settings)} [{item.status.value}] {item.question}")
    return 0


def _when(moment: Any, settings: KnowledgeSettings) -> str:
    if moment is None:
        return "…"
    return str(moment.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M"))


def _audit(args: argparse.Namespace) -> int:
    settings = get_settings()
    for r in _run(lambda admin: admin.audit(args.limit)):
        print(f"{_when(r.at, settings)}  {r.action:<14} {r.version or '':<28} {r.author:<12} "
              f"{r.note}")
    return 0


def _topics(args: argparse.Namespace) -> int:
    from knowledge.curation.topics import topic_json

    views = _run(lambda admin: admin.topics(min_conversations=args.min_conversations),
                 encoders=True)
    if args.json:
        print(topic_json([v.topic for v in views]))
        return 0
    if not views:
        print("no open topics")
    for v in views:
        t = v.topic
        now = v.live.kind.value if v.live else "nothing live"
        print(f"{t.id}  {t.conversations} conversations, {t.count} questions; live: {now}")
        print(f"  question: {t.question}")
        for example in t.examples[1:6]:
            print(f"  also:     {example}")
        if t.agent_replies:
            print(f"  agent:    {t.agent_replies[0]}")
    return 0


def _draft(args: argparse.Namespace) -> int:
    from knowledge.loader import dump_yaml

    async def draft(admin: Any) -> Any:
        review = await admin.draft_from_topic(
            args.topic_id, author=args.author, entry_id=args.entry, new_id=args.new_id,
            question=args.question, answer=args.answer, category=args.category)
        return review, (await admin.draft(review.draft.id)).kb

    review, kb = _run(draft, encoders=True)
    changes = [f"+ {c.entry_id}" for c in review.diff.added]
    changes += [f"~ {c.entry_id} (+{len(c.variants_added)} variants)" for c in review.diff.changed]
    print(f"draft {review.draft.id}: {', '.join(changes)}; test gate: {review.gate.summary}")
    for change in (*review.diff.added, *review.diff.changed):
        if change.after is not None:
            print(f"  question: {change.after.question}")
            print(f"  variants: {' | '.join(change.after.variants)}")
            print(f"  answer:   {change.after.answer}")
    if args.out is not None:
        args.out.write_text(dump_yaml(kb), encoding="utf-8")
        print(f"wrote {args.out} (edit and upload it, or publish the draft as it is)")
    print(f"publish it with: kefu kb publish-draft {review.draft.id}")
    return 0
