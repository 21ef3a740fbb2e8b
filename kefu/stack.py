"""Start the whole kefu stack (Redis, the gateway, Rasa) and stop it cleanly.

Used by ``make run`` (``python -m kefu.stack``) and by the end-to-end tests, so both run the
same processes with the same wiring. Rasa runs from ``.venv-rasa``; the gateway, which also
serves Rasa's custom actions (``actions.endpoint``, called with ``KEFU_ACTION_SECRET``), from the
interpreter running this module. The gateway and Rasa load their models at the same time.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import urlopen

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class StackConfig:
    """Ports, paths and secrets of one stack."""

    root: Path = ROOT
    state_dir: Path = ROOT / "var"
    redis_port: int = 6379
    rasa_port: int = 5005
    gateway_port: int = 8000
    rasa_token: str = "change-me"
    action_secret: str = "change-me"  # Rasa → the gateway's action endpoint
    start_redis: bool = True  # False: use a Redis already listening on redis_port
    extra_env: dict[str, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)  # filled by run_stack: process name → pid

    @property
    def redis_url(self) -> str:
        """Where every kefu process finds Redis."""
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def gateway_url(self) -> str:
        """Base URL of the kefu gateway."""
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def rasa_url(self) -> str:
        """Base URL of the Rasa server."""
        return f"http://127.0.0.1:{self.rasa_port}"

    def env(self) -> dict[str, str]:
        """Environment shared by every process of the stack."""
        return {
            **os.environ,
            "KEFU_REDIS_URL": self.redis_url,
            "KEFU_REDIS_HOST": "127.0.0.1",
            "KEFU_REDIS_PORT": str(self.redis_port),
            "KEFU_REDIS_DB": "0",
            "KEFU_RASA_URL": self.rasa_url,
            "KEFU_RASA_TOKEN": self.rasa_token,
            "KEFU_ACTION_SECRET": self.action_secret,
            "KEFU_GATEWAY_URL": self.gateway_url,
            "KEFU_PORT": str(self.gateway_port),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            # glibc gives each thread that allocates its own arena (up to 8 per core), and the
            # gateway's worker threads keep ~80 MB of freed memory in theirs (benchmarks/memory.py)
            "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2"),
            "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
            **self.extra_env,
        }


class StackError(RuntimeError):
    """A process of the stack failed to start; the message names it and its log."""


def port_open(port: int) -> bool:
    """True when something accepts TCP connections on localhost:port."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def _wait(name: str, proc: subprocess.Popen[bytes], log: Path, ready: str | int,
          timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"{name} exited with {proc.returncode}; see {log}")
        if isinstance(ready, int):
            if port_open(ready):
                return
        else:
            with contextlib.suppress(OSError), urlopen(ready, timeout=2) as response:
                if response.status < 400:
                    return
        time.sleep(0.3)
    raise StackError(f"{name} not ready after {timeout:.0f}s; see {log}")


def latest_model(models_dir: Path) -> Path:
    """The newest trained Rasa model, or a clear error telling how to train one."""
    models = sorted(models_dir.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not models:
        raise StackError(f"no trained Rasa model in {models_dir}: run `make train`")
    return models[-1]


@contextlib.contextmanager
def run_stack(config: StackConfig, model: Path | None = None) -> Iterator[StackConfig]:
    """Start every process, wait until each is ready, yield, then stop them in reverse order."""
    logs = config.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = config.env()
    py = sys.executable
    rasa_python = config.root / ".venv-rasa" / "bin" / "python"
    model = model or latest_model(config.root / "models")
    with contextlib.ExitStack() as stack:
        def start(name: str, args: list[str]) -> Callable[[str | int, float], None]:
            log = logs / f"{name}.log"
            handle = stack.enter_context(open(log, "ab"))
            proc = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, env=env,
                                    cwd=config.root, start_new_session=True)
            stack.callback(_stop, name, proc)
            config.pids[name] = proc.pid

            def ready(check: str | int, timeout: float) -> None:
                _wait(name, proc, log, check, timeout)
                logger.info("%s ready (pid %s, log %s)", name, proc.pid, log)

            return ready

        if config.start_redis and not port_open(config.redis_port):
            redis_dir = config.state_dir / "redis"
            redis_dir.mkdir(parents=True, exist_ok=True)
            server = shutil.which("redis-server")
            if server is None:
                raise StackError("redis-server not installed: run `make setup`")
            start("redis", [server, "--port", str(config.redis_port), "--bind", "127.0.0.1",
                            "--dir", str(redis_dir), "--appendonly", "yes"])(config.redis_port, 20)
        # Both load a model for seconds and need nothing of each other until a shopper writes.
        gateway = start("gateway", [py, "-m", "uvicorn", "bot.app:create_app", "--factory",
                                    "--host", "127.0.0.1", "--port", str(config.gateway_port),
                                    "--no-access-log"])
        # bot/rasa/serve.py is `rasa run` with a few of its hot spots fixed (see there)
        serve = config.root / "bot" / "rasa" / "serve.py"
        rasa = start("rasa", [str(rasa_python), str(serve), "run", "--enable-api",
                              "--auth-token", config.rasa_token, "-m", str(model),
                              "--port", str(config.rasa_port),
                              "--endpoints", "bot/rasa/endpoints.yml",
                              "--credentials", "bot/rasa/credentials.yml"])
        gateway(f"{config.gateway_url}/healthz", 180)
        rasa(f"{config.rasa_url}/status?token={config.rasa_token}", 300)
        _wait_ready(f"{config.gateway_url}/readyz", 120)
        yield config


def _wait_ready(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urlopen(url, timeout=5) as response:
            if response.status == 200:
                return
        time.sleep(0.5)
    raise StackError(f"gateway not ready after {timeout:.0f}s: {url}")


def _stop(name: str, proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    logger.info("%s stopped", name)


def banner(config: StackConfig) -> str:
    """What ``make run`` prints once everything is up: where each page is."""
    url = config.gateway_url
    return f"""
kefu is running on the demo store:
  web chat demo   {url}/static/demo.html
  agent console   {url}/console/
  knowledge admin {url}/admin/kb/
  shopper API     POST {url}/api/v1/messages
  API docs        {url}/docs
  terminal chat   .venv/bin/kefu chat --url {url}
  Rasa            {config.rasa_url}   logs in {config.state_dir / 'logs'}
  Rasa's custom actions run in the gateway (an internal route only Rasa may call)
The console and the admin need an account:
  .venv/bin/kefu agent add kim --groups presale,aftersale,logistics --role manager
Press Ctrl-C to stop."""


def main(argv: list[str] | None = None) -> int:
    """``python -m kefu.stack``: run the stack in the foreground until Ctrl-C."""
    parser = argparse.ArgumentParser(description="run the whole kefu stack")
    parser.add_argument("--port", type=int, default=int(os.environ.get("KEFU_PORT", "8000")))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    redis_port = urlparse(os.environ.get("KEFU_REDIS_URL", "redis://127.0.0.1:6379/0")).port or 6379
    rasa_port = urlparse(os.environ.get("KEFU_RASA_URL", "http://127.0.0.1:5005")).port or 5005
    state_dir = Path(os.environ.get("KEFU_STATE_DIR") or ROOT / "var")
    config = StackConfig(state_dir=state_dir, gateway_port=args.port, redis_port=redis_port,
                         rasa_port=rasa_port,
                         rasa_token=os.environ.get("KEFU_RASA_TOKEN", "change-me"),
                         action_secret=os.environ.get("KEFU_ACTION_SECRET", "change-me"))
    stop = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        with run_stack(config):
            print(banner(config), flush=True)
            while not stop:
                time.sleep(0.5)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
