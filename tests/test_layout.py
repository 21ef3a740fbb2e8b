"""The import rule of the tree, checked on every module's imports (read with ``ast``, not run).

1. Imports only go down the layers of top-level packages::

       kefu  ←  knowledge, handoff, orders  ←  actions, quality  ←  bot

   ``kefu`` (Redis keys, conversation record, accounts, errors, HTTP edge, UI kit) imports no
   other package; ``knowledge`` and ``handoff`` never import each other; ``actions`` may use both;
   ``bot`` (channels, gateway, Rasa project, the app that mounts everything) is on top.
2. At every level of the tree the parts of a package, its modules and its subpackages (each
   subpackage counting as one part), import each other without a cycle: ``knowledge.curation``
   may use the answering modules because none of them uses curation; ``bot.channels`` may use
   ``bot.gateway`` because the gateway never reaches back.

Every import counts, at module top or inside a function, under ``TYPE_CHECKING`` or not. Names
loaded at run time by string (``kefu.cli``'s command list, ``kefu.stack``'s process commands)
are not imports and are not checked.
"""

from __future__ import annotations

import ast
import itertools
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"kefu": 0, "knowledge": 1, "handoff": 1, "orders": 1, "actions": 2, "quality": 2,
          "bot": 3}


def modules() -> dict[str, Path]:
    """Every module of the product packages, by dotted name (a package by its ``__init__``)."""
    found: dict[str, Path] = {}
    for top in LAYERS:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imported(name: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """The project modules ``name`` imports, with the line of each import."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _known_prefix(alias.name, known)
                if target:
                    yield target, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                target = _known_prefix(f"{base}.{alias.name}", known) or _known_prefix(base, known)
                if target:
                    yield target, node.lineno


def _known_prefix(dotted: str, known: dict[str, Path]) -> str | None:
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in known:
            return ".".join(parts[:end])
    return None


def edges() -> list[tuple[str, str, int]]:
    """(importer, imported, line) for every import between two different project modules."""
    known = modules()
    return [(name, target, line) for name, path in known.items()
            for target, line in imported(name, path, known) if target != name]


def part_of(module: str, package: str) -> str | None:
    """The part of ``package`` that ``module`` belongs to (a module or subpackage), if any."""
    if package and module == package:
        return f"{package}.__init__"
    prefix = f"{package}." if package else ""
    if not module.startswith(prefix):
        return None
    return prefix + module[len(prefix):].split(".")[0]


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that starts and ends at the same node, or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_tree_is_read() -> None:
    known = modules()
    assert {"kefu.errors", "knowledge.curation.admin", "bot.gateway.service"} <= known.keys()
    assert ("knowledge.curation.admin", "knowledge.runtime") in {(a, b) for a, b, _ in edges()}


def test_imports_only_go_down_the_layers() -> None:
    wrong = []
    for src, dst, line in edges():
        top_src, top_dst = src.split(".")[0], dst.split(".")[0]
        if top_src != top_dst and LAYERS[top_dst] >= LAYERS[top_src]:
            wrong.append(f"{src} (line {line}) imports {dst}")
    assert not wrong, "imports that do not go down kefu ← knowledge/handoff ← actions ← bot:\n" \
        + "\n".join(wrong)


def test_no_cycle_between_the_parts_of_any_package() -> None:
    known = modules()
    packages = [""] + [name for name, path in known.items() if path.name == "__init__.py"]
    found = []
    for package in packages:
        graph: dict[str, set[str]] = defaultdict(set)
        lines: dict[tuple[str, str], str] = {}
        for src, dst, line in edges():
            a, b = part_of(src, package), part_of(dst, package)
            if a and b and a != b:
                graph[a].add(b)
                lines.setdefault((a, b), f"{src}:{line} → {dst}")
        if (loop := cycle(graph)) is not None:
            steps = [lines[(x, y)] for x, y in itertools.pairwise(loop)]
            found.append(f"in {package or 'the tree'}: {' → '.join(loop)}\n  " + "\n  ".join(steps))
    assert not found, "import cycles between parts of a package:\n" + "\n".join(found)
