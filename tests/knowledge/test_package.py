from __future__ import annotations

from pathlib import Path

import knowledge
from tests.helpers.processes import loaded_by


def test_importing_the_package_stays_light(repo_root: Path) -> None:
    statement = "import knowledge; knowledge.KnowledgeService; knowledge.create_router"
    assert loaded_by(statement, ["torch", "sentence_transformers"], repo_root) == []


def test_public_names_resolve() -> None:
    for name in knowledge.__all__:
        assert getattr(knowledge, name) is not None, name
