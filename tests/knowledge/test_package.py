from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import knowledge


def test_importing_the_package_stays_light(repo_root: Path) -> None:
    code = ("import sys, knowledge; knowledge.KnowledgeService; knowledge.create_router; "
            "print(sorted(m for m in ('torch', 'sentence_transformers') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=repo_root, check=True)
    assert result.stdout.strip() == "[]"


def test_public_names_resolve() -> None:
    for name in knowledge.__all__:
        assert getattr(knowledge, name) is not None, name
