"""Run the whole kefu stack (Redis, the gateway, Rasa, the lease sweeper) under supervisord.

The demo order service and the order-events poller (``orders.demo``, ``orders.proactive``) are
programs of the stack too.

Used by ``make run`` (``python -m kefu.stack``) and by the end-to-end tests, so both run the
same processes with the same wiring. supervisord (:mod:`kefu.supervision`) starts them, restarts
one that dies (with backoff while it fails to start), logs each death and return to
``var/logs/watchdog.log`` (``make run`` echoes it), and stops the stack with a message naming the
process when one keeps dying. Rasa runs from ``.venv-rasa``; the gateway, which also serves Rasa's
custom actions (``actions.endpoint``, called with ``KEFU_ACTION_SECRET``), and the sweeper from
the interpreter running this module. Rasa and the gateway listen on 127.0.0.1 unless told
otherwise (``KEFU_RASA_INTERFACE``, ``KEFU_HOST``, for a private network). The two shared
secrets come from the environment or ``.env`` (``make setup`` generates them); a placeholder is
refused.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
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

from dotenv import dotenv_values

from kefu.settings import PLACEHOLDER_SECRETS
from kefu.supervision import (
    Program,
    Supervisor,
    gave_up,
    socket_path,
    start_supervisord,
    stop_supervisord,
    supervisor_config,
)

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]


METERED = ("sweeper", "rasa", "orders", "order-events", "watchdog")
"""Programs with their own /metrics; ``make run`` puts them on the gateway's port + 1, + 2, …"""


@dataclass
class StackConfig:
    """Ports, paths and secrets of one stack."""

    root: Path = ROOT
    state_dir: Path = ROOT / "var"
    redis_port: int = 6379
    rasa_port: int = 5005
    gateway_port: int = 8000
    orders_port: int = 0  # the demo order service; 0: a free port picked at start
    orders_api_key: str = ""  # the demo order service's key; "" → made up at start
    # program → its own /metrics on 127.0.0.1 (sweeper, rasa, orders, order-events, watchdog);
    # a program missing here serves none. The gateway's is /metrics on its own port.
    metrics_ports: dict[str, int] = field(default_factory=dict)
    rasa_token: str = ""  # "" → KEFU_RASA_TOKEN from the environment or .env
    action_secret: str = ""  # Rasa → the gateway's action endpoint; "" → KEFU_ACTION_SECRET
    gateway_host: str = "127.0.0.1"
    rasa_interface: str = "127.0.0.1"
    start_redis: bool = True  # False: use a Redis already listening on redis_port
    restart_limit: int = 5  # deaths of one process within restart_window before giving up
    restart_window: float = 300.0
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

    @property
    def orders_url(self) -> str:
        """Base URL of the demo order service."""
        return f"http://127.0.0.1:{self.orders_port}"

    @property
    def logs(self) -> Path:
        """Where each process's log is written."""
        return self.state_dir / "logs"

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
            "PYTHONUNBUFFERED": "1",
            # the demo store's order system (orders.demo), unless the store configured its own
            "KEFU_ORDERS_URL": os.environ.get("KEFU_ORDERS_URL") or self.orders_url,
            "KEFU_ORDERS_API_KEY": os.environ.get("KEFU_ORDERS_API_KEY") or self.orders_api_key,
            **self.extra_env,
        }

    def supervisor(self) -> Supervisor:
        """A client of this stack's supervisord."""
        return Supervisor(socket_path(self.state_dir))


class StackError(RuntimeError):
    """A process of the stack failed to start or kept dying; the message names it and its log."""


def port_open(port: int) -> bool:
    """True when something accepts TCP connections on localhost:port."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def latest_model(models_dir: Path) -> Path:
    """The newest trained Rasa model, or a clear error telling how to train one."""
    models = sorted(models_dir.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not models:
        raise StackError(f"no trained Rasa model in {models_dir}: run `make train`")
    return models[-1]


def secret(name: str, given: str, root: Path = ROOT) -> str:
    """A shared secret from ``given``, the environment or ``.env``; never a placeholder."""
    value = given or os.environ.get(name) or str(dotenv_values(root / ".env").get(name) or "")
    if value.strip().lower() in PLACEHOLDER_SECRETS:
        raise StackError(f"{name} is not set or is a placeholder: run `make setup` (it writes "
                         "generated secrets to .env) or set a real one")
    return value


def programs(config: StackConfig, model: Path) -> list[Program]:
    """The stack's processes as supervisord programs."""
    py = sys.executable
    ports = config.metrics_ports

    def metered(name: str, module: str, *args: str) -> list[str]:
        """``python -m module args``, served with /metrics when the program has a port."""
        if ports.get(name):
            return [py, "-m", "kefu.metrics", "--port", str(ports[name]), module, *args]
        return [py, "-m", module, *args]

    found: list[Program] = []
    if config.start_redis and not port_open(config.redis_port):
        server = shutil.which("redis-server")
        if server is None:
            raise StackError("redis-server not installed: run `make setup`")
        redis_dir = config.state_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        found.append(Program("redis", [
            server, "--port", str(config.redis_port), "--bind", "127.0.0.1",
            "--dir", str(redis_dir), "--appendonly", "yes", "--appendfsync", "no"],
            startsecs=1, priority=10))
    if not os.environ.get("KEFU_ORDERS_URL"):  # a store's own order system needs no demo
        orders_db = config.state_dir / "orders" / "demo.sqlite"
        orders_db.parent.mkdir(parents=True, exist_ok=True)
        found.append(Program("orders", metered(
            "orders", "orders.demo", "--port", str(config.orders_port), "--db", str(orders_db)),
            startsecs=2, priority=20))
    # proactive order messages: polls the orders conversations verified (orders.proactive)
    found.append(Program("order-events", metered("order-events", "orders.proactive"),
                         startsecs=2, priority=45))
    sweeper = [py, "-m", "handoff.sweeper"]
    if ports.get("sweeper"):
        sweeper += ["--metrics-port", str(ports["sweeper"])]
    rasa_metrics = ["--metrics-port", str(ports["rasa"])] if ports.get("rasa") else []
    found.append(Program("sweeper", sweeper, startsecs=2, priority=30))
    found.append(Program("gateway", [
        py, "-m", "kefu.cli", "serve", "--host", config.gateway_host,
        "--port", str(config.gateway_port)], startsecs=20, priority=40, stopwaitsecs=30))
    # bot/rasa/serve.py is `rasa run` with a few of its hot spots fixed (see there)
    found.append(Program("rasa", [
        str(config.root / ".venv-rasa" / "bin" / "python"),
        str(config.root / "bot" / "rasa" / "serve.py"), *rasa_metrics, "run", "--enable-api",
        "--auth-token", config.rasa_token, "-m", str(model),
        "--interface", config.rasa_interface, "--port", str(config.rasa_port),
        "--endpoints", "bot/rasa/endpoints.yml", "--credentials", "bot/rasa/credentials.yml"],
        startsecs=20, priority=50, stopwaitsecs=30))
    return found


@contextlib.contextmanager
def run_stack(config: StackConfig, model: Path | None = None) -> Iterator[StackConfig]:
    """Start every process under supervisord, wait until each is ready, yield, then stop all."""
    config.rasa_token = secret("KEFU_RASA_TOKEN", config.rasa_token, config.root)
    config.action_secret = secret("KEFU_ACTION_SECRET", config.action_secret, config.root)
    model = model or latest_model(config.root / "models")
    config.orders_port = config.orders_port or _free_port()
    config.orders_api_key = config.orders_api_key or secrets.token_urlsafe(24)
    text = supervisor_config(
        programs(config, model), state_dir=config.state_dir, logs=config.logs,
        root=config.root, limit=config.restart_limit, window=config.restart_window,
        metrics_port=config.metrics_ports.get("watchdog", 0))
    daemon = start_supervisord(text, state_dir=config.state_dir, logs=config.logs,
                               env=config.env(), cwd=config.root)
    try:
        _wait_until_ready(config, daemon)
        yield config
    finally:
        if not stop_supervisord(daemon):
            _kill_leftovers(config)
        logger.info("stack stopped")


def _wait_until_ready(config: StackConfig, daemon: subprocess.Popen[bytes]) -> None:
    demo_orders = [] if os.environ.get("KEFU_ORDERS_URL") else [
        ("orders", f"{config.orders_url}/healthz", 60.0)]
    checks = [*demo_orders, ("gateway", f"{config.gateway_url}/healthz", 180.0),
              ("rasa", f"{config.rasa_url}/status?token={config.rasa_token}", 300.0),
              ("stack", f"{config.gateway_url}/readyz", 120.0)]
    for name, url, timeout in checks:
        deadline = time.monotonic() + timeout
        while not _answers(url):
            _check_alive(config, daemon)
            if time.monotonic() > deadline:
                raise StackError(f"{name} not ready after {timeout:.0f}s; "
                                 f"see {config.logs / (name + '.log')}")
            time.sleep(0.3)
        logger.info("%s ready", name)
    supervisor = config.supervisor()
    config.pids.update({p["name"]: int(p["pid"]) for p in supervisor.all() if p["pid"]})


def _answers(url: str) -> bool:
    with contextlib.suppress(OSError), urlopen(url, timeout=5) as response:
        return bool(response.status < 400)
    return False


def _check_alive(config: StackConfig, daemon: subprocess.Popen[bytes]) -> None:
    if daemon.poll() is None:
        return
    raise StackError(gave_up(config.state_dir) or f"supervisord exited with {daemon.returncode}; "
                     f"see {config.logs / 'supervisord.log'}")


def _kill_leftovers(config: StackConfig) -> None:
    """After supervisord was killed: end the programs it started (each leads its own group)."""
    for name, pid in config.pids.items():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
                logger.warning("%s (pid %d) outlived supervisord; killed", name, pid)


def banner(config: StackConfig) -> str:
    """What ``make run`` prints once everything is up: where each page is."""
    url = config.gateway_url
    served = "  ".join(f"{name} :{port}" for name, port in config.metrics_ports.items() if port)
    return f"""
kefu is running on the demo store:
  web chat demo   {url}/static/demo.html
  agent console   {url}/console/
  knowledge admin {url}/admin/kb/
  order templates {url}/admin/templates/   (proactive messages; order events: POST
                  {url}/api/v1/orders/events, signed with KEFU_ORDERS_WEBHOOK_SECRET)
  quality reports {url}/quality/   (supervisors: alerts in the console)
  metrics         {url}/metrics   (Prometheus, this host only)
  other /metrics  http://127.0.0.1:PORT/metrics   {served or "off"}
  shopper API     POST {url}/api/v1/messages
  API docs        {url}/docs
  terminal chat   .venv/bin/kefu chat --url {url}
  Rasa            {config.rasa_url} (127.0.0.1 only)   logs in {config.logs}
  Rasa's custom actions run in the gateway (an internal route only Rasa may call)
  orders          the demo order service {config.orders_url} (orders/openapi.yaml; try
                  "我的订单 2026112012345 到哪了", verify with the phone's last digits 8000;
                  "登记赠品" for order 2026111900066; work orders are in the console)
  supervisord restarts a process that dies:
    .venv/bin/supervisorctl -c {config.state_dir / 'supervisor' / 'supervisord.conf'} status
The console and the admin need an account:
  .venv/bin/kefu agent add kim --groups presale,aftersale,logistics --role manager
Press Ctrl-C to stop."""


def main(argv: list[str] | None = None) -> int:
    """``python -m kefu.stack``: run the stack in the foreground until Ctrl-C."""
    parser = argparse.ArgumentParser(description="run the whole kefu stack under supervisord")
    parser.add_argument("--port", type=int, default=int(os.environ.get("KEFU_PORT", "8000")))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    redis_port = urlparse(os.environ.get("KEFU_REDIS_URL", "redis://127.0.0.1:6379/0")).port or 6379
    rasa_port = urlparse(os.environ.get("KEFU_RASA_URL", "http://127.0.0.1:5005")).port or 5005
    state_dir = Path(os.environ.get("KEFU_STATE_DIR") or ROOT / "var")
    ports = {name: int(os.environ.get(f"KEFU_{name.upper().replace('-', '_')}_METRICS_PORT",
                                      str(args.port + offset)))
             for offset, name in enumerate(METERED, start=1)}
    config = StackConfig(state_dir=state_dir, gateway_port=args.port, redis_port=redis_port,
                         metrics_ports=ports,
                         rasa_port=rasa_port,
                         gateway_host=os.environ.get("KEFU_HOST", "127.0.0.1"),
                         rasa_interface=os.environ.get("KEFU_RASA_INTERFACE", "127.0.0.1"))
    stop = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        with run_stack(config):
            print(banner(config), flush=True)
            _follow(config, lambda: stop)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    reason = gave_up(config.state_dir)
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 1
    print("stopped.")
    return 0


def _follow(config: StackConfig, stopped: Callable[[], bool]) -> None:
    """Echo the watchdog's lines until Ctrl-C, or until supervisord is gone (it gave up)."""
    log = config.logs / "watchdog.log"
    offset = log.stat().st_size if log.exists() else 0
    sock = socket_path(config.state_dir)
    while not stopped():
        if log.exists() and log.stat().st_size > offset:
            with open(log, encoding="utf-8", errors="replace") as handle:
                handle.seek(offset)
                for line in handle.read().splitlines():
                    print(f"  {line}", flush=True)
                offset = handle.tell()
        if gave_up(config.state_dir) or not sock.exists():
            return
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
