"""Train the Rasa model only when its inputs changed.

The model is named after a fingerprint of everything that shapes it (``config.yml``, the domain,
the training data and the Rasa lock), so an unchanged checkout reuses ``models/kefu-<fp>.tar.gz``
and CI pays for one training at most. Plain Python: this runs in the app venv and calls the Rasa
venv's ``rasa`` executable.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

logger = logging.getLogger(__name__)

CONFIG = Path("config.yml")
DOMAIN = Path("bot/rasa/domain.yml")
DATA = Path("bot/rasa/data")
RASA_LOCK = Path("locks/rasa.txt")
COMPONENTS = (Path("bot/rasa/components.py"), Path("kefu/language.py"))  # code in the model
RASA_BIN = Path(".venv-rasa/bin/rasa")
MODEL_PREFIX = "kefu-"
KEEP_MODELS = 3


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    return [path] if path.is_file() else []


def fingerprint(paths: Iterable[Path]) -> str:
    """A short hash of the names and contents of ``paths`` (directories are walked).

    Only names below each path and contents count, not where the checkout is, so two clones
    agree. Missing paths count as empty, so adding one later changes the fingerprint.
    """
    digest = hashlib.sha256()
    for root in paths:
        digest.update(f"{root.name}\0".encode())
        for file in _files(root):
            digest.update(f"{file.relative_to(root).as_posix()}\0".encode())
            digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()[:12]


def training_inputs(repo_root: Path) -> list[Path]:
    """Every file whose change calls for a new model."""
    return [repo_root / p for p in (CONFIG, DOMAIN, DATA, RASA_LOCK, *COMPONENTS)]


def model_path(repo_root: Path, models_dir: Path) -> Path:
    """Where the model for the current inputs lives (whether or not it is trained yet)."""
    return models_dir / f"{MODEL_PREFIX}{fingerprint(training_inputs(repo_root))}.tar.gz"


def train_if_changed(repo_root: Path, models_dir: Path, *, force: bool = False) -> Path:
    """The model for the current inputs, trained first if no such model exists.

    A reused model's mtime is refreshed, because the stack serves the newest model in
    ``models_dir``.

    Raises:
        subprocess.CalledProcessError: ``rasa train`` failed (its output went to our stdout).
        FileNotFoundError: the Rasa venv is missing.
    """
    target = model_path(repo_root, models_dir)
    if target.exists() and not force:
        os.utime(target)
        logger.info("Rasa inputs unchanged: reusing %s", target)
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    args = [
        str(repo_root / RASA_BIN), "train", "--config", str(CONFIG), "--domain", str(DOMAIN),
        "--data", str(DATA), "--out", str(models_dir.resolve()),
        "--fixed-model-name", target.name.removesuffix(".tar.gz"),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "SQLALCHEMY_SILENCE_UBER_WARNING": "1"}
    started = time.monotonic()
    subprocess.run(args, cwd=repo_root, env=env, check=True)
    logger.info("trained %s in %.0f s", target, time.monotonic() - started)
    _prune(models_dir, keep=target)
    return target


def _prune(models_dir: Path, keep: Path) -> None:
    models = sorted(models_dir.glob(f"{MODEL_PREFIX}*.tar.gz"), key=lambda p: p.stat().st_mtime)
    for old in [m for m in models if m != keep][: max(0, len(models) - KEEP_MODELS)]:
        old.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m bot.rasa.training``: train the Rasa model if needed and print its path."""
    root = Path(__file__).resolve().parents[2]
    parser = argparse.ArgumentParser(description="train the Rasa model when its inputs changed")
    parser.add_argument("--root", type=Path, default=root, help="repository root")
    parser.add_argument("--models", type=Path, default=None, help="output dir (default: models)")
    parser.add_argument("--force", action="store_true", help="train even if the model exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    models_dir = args.models or args.root / "models"
    try:
        path = train_if_changed(args.root, models_dir, force=args.force)
    except subprocess.CalledProcessError as exc:
        print(f"error: rasa train failed with exit code {exc.returncode}", file=sys.stderr)
        return 1
    except FileNotFoundError:
        print(f"error: {args.root / RASA_BIN} not found: run `make setup`", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
