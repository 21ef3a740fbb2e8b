"""Knowledge: FAQ entries, validation, published versions, retrieval and the answer decision.

Importing the package is cheap: the shapes, errors and settings load eagerly; everything heavier
(loader, store, service, runtime, HTTP router) loads on first attribute access. Nothing here
imports torch; only loading an encoder does.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from knowledge.errors import (
    KnowledgeError,
    NoLiveVersion,
    Problem,
    ValidationFailed,
    VersionNotFound,
)
from knowledge.models import (
    Candidate,
    Category,
    DecideRequest,
    Decision,
    DecisionKind,
    Entry,
    KnowledgeBase,
    TestQuestion,
)
from knowledge.settings import KnowledgeSettings, get_settings

if TYPE_CHECKING:
    from knowledge.api import create_router
    from knowledge.loader import dump_yaml, load_kb, load_kb_bytes
    from knowledge.runtime import KnowledgeRuntime
    from knowledge.service import KnowledgeIndex, KnowledgeService
    from knowledge.store import KnowledgeStore, VersionInfo

_LAZY = {
    "create_router": "knowledge.api",
    "dump_yaml": "knowledge.loader",
    "load_kb": "knowledge.loader",
    "load_kb_bytes": "knowledge.loader",
    "KnowledgeIndex": "knowledge.service",
    "KnowledgeRuntime": "knowledge.runtime",
    "KnowledgeService": "knowledge.service",
    "KnowledgeStore": "knowledge.store",
    "VersionInfo": "knowledge.store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'knowledge' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "Candidate",
    "Category",
    "DecideRequest",
    "Decision",
    "DecisionKind",
    "Entry",
    "KnowledgeBase",
    "KnowledgeError",
    "KnowledgeIndex",
    "KnowledgeRuntime",
    "KnowledgeService",
    "KnowledgeSettings",
    "KnowledgeStore",
    "NoLiveVersion",
    "Problem",
    "TestQuestion",
    "ValidationFailed",
    "VersionInfo",
    "VersionNotFound",
    "create_router",
    "dump_yaml",
    "get_settings",
    "load_kb",
    "load_kb_bytes",
]
