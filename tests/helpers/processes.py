"""Start and stop real server processes for tests (redis-server, Rasa, gateway)."""

from __future__ import annotations

import ast
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx


def loaded_by(statement: str, modules: Sequence[str], cwd: Path) -> list[str]:
    """Which of ``modules`` a fresh interpreter has imported after running ``statement``."""
    code = f"import sys; {statement}; print(sorted(m for m in {list(modules)!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd,
                            check=True)
    loaded: list[str] = ast.literal_eval(result.stdout.strip())
    return loaded


def free_port() -> int:
    """A TCP port that was free a moment ago on localhost."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until something accepts connections on ``port`` or fail with the process log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited early with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on port {port} after {timeout}s")


def wait_for_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until ``url`` answers 2xx."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited early with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2.0).is_success:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready after {timeout}s ({last})")


@contextlib.contextmanager
def running(
    args: Sequence[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a process for the duration of the block, output to ``log_path``, then terminate it."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            list(args), stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})}, cwd=cwd,
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def redis_server_binary() -> str:
    """Path of redis-server, or a clear failure telling how to install it."""
    path = shutil.which("redis-server")
    if path is None:
        raise RuntimeError("redis-server not found: run `make setup` (installs Debian redis-server)")
    return path


@contextlib.contextmanager
def redis_server(
    data_dir: Path, port: int | None = None
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A real redis-server with AOF persistence in ``data_dir`` on a free port."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
        "--appendonly", "yes", "--save", "", "--protected-mode", "no",
    ]
    with running(args, data_dir / "redis.log") as proc:
        wait_for_port(port, 10, proc)
        yield port, proc
