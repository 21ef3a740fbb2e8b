"""The ``kefu`` command: a thin root that lets each package register its own sub-commands.

Packages expose ``register(subparsers)`` in their ``cli`` module; each sub-command sets
``func(args) -> int`` as its handler. Output goes to stdout; errors to stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

_COMMAND_MODULES = (
    "knowledge.curation.cli", "knowledge.curation.admin_cli", "handoff.cli", "bot.cli",
)


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every package's sub-commands."""
    parser = argparse.ArgumentParser(prog="kefu", description="kefu customer-service bot")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kefu`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
