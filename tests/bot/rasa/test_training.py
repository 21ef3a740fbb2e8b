from __future__ import annotations

import json
import os
import shutil
import tarfile
import time
from pathlib import Path

import pytest

from bot.rasa.training import fingerprint, main, model_path, train_if_changed, training_inputs


def make_project(root: Path) -> Path:
    (root / "bot/rasa/data").mkdir(parents=True)
    (root / "locks").mkdir()
    (root / "config.yml").write_text("language: zh\n")
    (root / "bot/rasa/domain.yml").write_text("intents: [greet]\n")
    (root / "bot/rasa/data/nlu.yml").write_text("nlu: []\n")
    (root / "locks/rasa.txt").write_text("rasa==3.6.21\n")
    return root


def fp(root: Path) -> str:
    return fingerprint(training_inputs(root))


def test_fingerprint_is_the_same_for_two_clones(tmp_path: Path) -> None:
    a, b = make_project(tmp_path / "a"), make_project(tmp_path / "clone-b")
    assert fp(a) == fp(b)
    assert len(fp(a)) == 12


@pytest.mark.parametrize("change", [
    lambda r: (r / "config.yml").write_text("language: en\n"),
    lambda r: (r / "bot/rasa/domain.yml").write_text("intents: [greet, goodbye]\n"),
    lambda r: (r / "bot/rasa/data/nlu.yml").write_text("nlu: [x]\n"),
    lambda r: (r / "bot/rasa/data/rules.yml").write_text("rules: []\n"),
    lambda r: (r / "bot/rasa/data/nlu.yml").rename(r / "bot/rasa/data/nlu2.yml"),
    lambda r: (r / "locks/rasa.txt").write_text("rasa==3.6.22\n"),
])
def test_fingerprint_changes_with_every_training_input(tmp_path: Path, change: object) -> None:
    root = make_project(tmp_path)
    before = fp(root)
    change(root)  # type: ignore[operator]
    assert fp(root) != before


def test_fingerprint_ignores_files_that_do_not_shape_the_model(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    before = fp(root)
    (root / "bot/rasa/endpoints.yml").write_text("action_endpoint: {}\n")
    (root / "README.md").write_text("hello\n")
    assert fp(root) == before


def test_an_existing_model_is_reused_without_training(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo")  # no .venv-rasa here: training would fail
    models = tmp_path / "models"
    models.mkdir()
    existing = model_path(root, models)
    existing.write_bytes(b"model")
    newer = models / "kefu-000000000000.tar.gz"
    newer.write_bytes(b"other")
    an_hour_ago = time.time() - 3600
    os.utime(existing, (an_hour_ago, an_hour_ago))

    assert train_if_changed(root, models) == existing
    assert existing.stat().st_mtime >= newer.stat().st_mtime  # the newest again, for the stack


@pytest.mark.rasa
@pytest.mark.slow
def test_real_training_names_the_model_after_its_inputs(repo_root: Path, tmp_path: Path) -> None:
    if not (repo_root / ".venv-rasa/bin/rasa").exists():
        pytest.fail("the Rasa venv is missing: run `make setup`")
    project = tmp_path / "repo"
    inputs = [p.relative_to(repo_root).as_posix() for p in training_inputs(repo_root)]
    packages = ["bot/__init__.py", "bot/rasa/__init__.py", "kefu"]  # to import the NLU component
    for path in inputs + packages:
        source, target = repo_root / path, project / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy(source, target)
    (project / ".venv-rasa").symlink_to(repo_root / ".venv-rasa")
    models = tmp_path / "models"

    started = time.monotonic()
    model = train_if_changed(project, models)
    trained_in = time.monotonic() - started

    assert model == model_path(repo_root, models)  # same inputs, same name as the real repo's
    with tarfile.open(model) as archive:
        member = archive.extractfile("metadata.json") or archive.extractfile("/metadata.json")
        assert member is not None
        metadata = json.load(member)
    assert metadata["language"] == "zh" and metadata["assistant_id"] == "kefu"
    assert "give_order_number" in metadata["domain"]["intents"]
    assert "bot.rasa.components.LanguageExtractor" in json.dumps(metadata["predict_schema"])

    started = time.monotonic()
    assert train_if_changed(project, models) == model
    assert time.monotonic() - started < trained_in / 10  # the second call trains nothing


def test_cli_prints_the_model_or_explains_a_missing_rasa_venv(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project(tmp_path / "repo")
    models = tmp_path / "models"
    assert main(["--root", str(root), "--models", str(models)]) == 1
    assert "make setup" in capsys.readouterr().err

    model_path(root, models).write_bytes(b"model")  # train_if_changed made the directory
    assert main(["--root", str(root), "--models", str(models)]) == 0
    assert capsys.readouterr().out.strip() == str(model_path(root, models))
