"""supervisord runs ``make run``'s processes: restarts with backoff, logs, gives up loudly.

:func:`supervisor_config` writes the configuration of one stack: each process (Redis, the
gateway, Rasa, the lease sweeper) is a supervisord program with ``autorestart``. A process that
dies while starting (before ``startsecs``) is started again after 1 s, 2 s, 3 s … (supervisord's
backoff) and, after ``startretries`` such failures, left FATAL; one that dies after running is
started again at once.

:func:`watchdog` is a supervisord event listener in the same configuration. It logs every death
and every return ("gateway died (signal 9) … running again (pid 4242)") to ``watchdog.log``, and
gives up on the stack, with a message naming the process and its log, when a process went
FATAL or died more than ``limit`` times within ``window`` seconds: it writes the reason to
``gave-up`` and shuts supervisord down, so ``make run`` exits with that message instead of
looking healthy while a part keeps dying.

:class:`Supervisor` talks to a running supervisord over its UNIX socket (XML-RPC): process
states and pids, for ``kefu.stack`` and the fault tests.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, cast

from kefu import metrics

SOCKET_NAME = "supervisor.sock"
GAVE_UP_NAME = "gave-up"
MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to 108 bytes


@dataclass(frozen=True)
class Program:
    """One process supervisord keeps running."""

    name: str
    command: Sequence[str]
    startsecs: int = 5  # it must live this long to count as started (else: backoff, retry)
    startretries: int = 5  # failed starts in a row before it is left FATAL
    priority: int = 100  # lower starts first and stops last
    stopwaitsecs: int = 20
    environment: Mapping[str, str] = field(default_factory=dict)


def socket_path(state_dir: Path) -> Path:
    """Where the stack's supervisord listens (a short path under /tmp if ``state_dir`` is deep)."""
    path = state_dir / "supervisor" / SOCKET_NAME
    if len(str(path)) < MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"kefu-{digest}.sock"


def _value(text: str) -> str:
    return text.replace("%", "%%")  # supervisord expands %(name)s in values


def supervisor_config(programs: Iterable[Program], *, state_dir: Path, logs: Path, root: Path,
                      limit: int, window: float, metrics_port: int = 0) -> str:
    """The supervisord configuration of one stack (``supervisord -c <file> -n`` runs it).

    ``metrics_port``: the watchdog's own ``/metrics`` on 127.0.0.1 (0: none).
    """
    sock = socket_path(state_dir)
    work = state_dir / "supervisor"
    watchdog = [sys.executable, "-m", "kefu.supervision", "watchdog", "--limit", str(limit),
                "--window", str(window), "--gave-up", str(work / GAVE_UP_NAME),
                "--logs", str(logs)] + (
                    ["--metrics-port", str(metrics_port)] if metrics_port else [])
    lines = [
        "[unix_http_server]", f"file={_value(str(sock))}", "chmod=0700", "",
        "[supervisord]", "nodaemon=true", f"logfile={_value(str(logs / 'supervisord.log'))}",
        "logfile_maxbytes=10MB", "logfile_backups=2", f"pidfile={_value(str(work / 'pid'))}",
        f"childlogdir={_value(str(logs))}", f"directory={_value(str(root))}",
        "identifier=kefu", "loglevel=info", "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
        "[supervisorctl]", f"serverurl=unix://{_value(str(sock))}", "",
        "[eventlistener:watchdog]", f"command={_value(shlex.join(watchdog))}",
        "events=PROCESS_STATE", "buffer_size=100", "priority=1", "autorestart=true",
        f"stderr_logfile={_value(str(logs / 'watchdog.log'))}", "stderr_logfile_maxbytes=5MB", "",
    ]
    for program in programs:
        lines += [
            f"[program:{program.name}]", f"command={_value(shlex.join(program.command))}",
            f"directory={_value(str(root))}", "autostart=true", "autorestart=true",
            f"startsecs={program.startsecs}", f"startretries={program.startretries}",
            f"priority={program.priority}", "stopsignal=TERM",
            f"stopwaitsecs={program.stopwaitsecs}", "stopasgroup=true", "killasgroup=true",
            "redirect_stderr=true", f"stdout_logfile={_value(str(logs / f'{program.name}.log'))}",
            "stdout_logfile_maxbytes=50MB", "stdout_logfile_backups=2",
        ]
        if program.environment:
            pairs = ",".join(f'{k}="{_value(v)}"' for k, v in program.environment.items())
            lines.append(f"environment={pairs}")
        lines.append("")
    return "\n".join(lines)


def start_supervisord(config_text: str, *, state_dir: Path, logs: Path, env: Mapping[str, str],
                      cwd: Path) -> subprocess.Popen[bytes]:
    """Write the configuration and run supervisord in the foreground (``-n``) as a child."""
    work = state_dir / "supervisor"
    work.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    (work / GAVE_UP_NAME).unlink(missing_ok=True)
    conf = work / "supervisord.conf"
    conf.write_text(config_text, encoding="utf-8")
    with open(logs / "supervisord.out", "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-n", "-c", str(conf)],
            stdout=out, stderr=subprocess.STDOUT, env=dict(env), cwd=cwd,
            start_new_session=True)


def stop_supervisord(daemon: subprocess.Popen[bytes], timeout: float = 90.0) -> bool:
    """Stop every program, then supervisord (SIGTERM); True when it finished by itself.

    When it does not finish in time it is killed, and its programs may be left running.
    """
    if daemon.poll() is not None:
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(daemon.pid, signal.SIGTERM)
    try:
        daemon.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait()
        return False
    return True


def gave_up(state_dir: Path) -> str | None:
    """Why the watchdog stopped supervisord, if it did."""
    path = state_dir / "supervisor" / GAVE_UP_NAME
    return path.read_text(encoding="utf-8").strip() if path.exists() else None


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__()
        self._path = path
        self._timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        connection = self._connection[1]
        if connection is None:  # kept, so ServerProxy's close() closes it
            connection = _UnixHTTPConnection(self._path, self._timeout)
            self._connection = host, connection
        return connection


class Supervisor:
    """A running supervisord, over its UNIX socket (XML-RPC, one connection per call)."""

    def __init__(self, sock: Path, timeout: float = 10.0) -> None:
        self._sock = str(sock)
        self._timeout = timeout

    def _call(self, method: str, *args: Any) -> Any:
        transport = _UnixTransport(self._sock, self._timeout)
        with xmlrpc.client.ServerProxy("http://localhost/RPC2", transport=transport) as proxy:
            return getattr(proxy.supervisor, method)(*args)

    def info(self, name: str) -> dict[str, Any]:
        """The record of program ``name`` (``statename``, ``pid``, ``start``…)."""
        return cast(dict[str, Any], self._call("getProcessInfo", name))

    def all(self) -> list[dict[str, Any]]:
        """Every program's record."""
        return cast(list[dict[str, Any]], self._call("getAllProcessInfo"))

    def pid(self, name: str) -> int:
        """The pid of program ``name`` (0 while it is not running)."""
        return int(self.info(name)["pid"])

    def running(self, name: str) -> bool:
        """Whether program ``name`` is RUNNING (lived past its ``startsecs``) or STARTING."""
        return self.info(name)["statename"] in ("RUNNING", "STARTING")

    def shutdown(self) -> None:
        """Stop every program, then supervisord itself."""
        self._call("shutdown")


# --- the watchdog event listener ----------------------------------------------------------------


def _headers(line: str) -> dict[str, str]:
    return dict(part.split(":", 1) for part in line.split() if ":" in part)


class Watchdog:
    """Decides from supervisord's process events when the stack should give up."""

    def __init__(self, *, limit: int, window: float, logs: Path,
                 clock: Any = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.logs = logs
        self._clock = clock
        self._deaths: dict[str, deque[float]] = {}

    def event(self, kind: str, payload: Mapping[str, str]) -> tuple[str | None, str | None]:
        """(a line to log, the reason to give up) for one PROCESS_STATE event."""
        name = payload.get("processname", "?")
        if name == "watchdog":
            return None, None
        log = self.logs / f"{name}.log"
        if kind == "PROCESS_STATE_FATAL":
            metrics.PROCESS_EVENTS.labels(name, "fatal").inc()
            return (f"{name} could not be started (FATAL)",
                    f"{name} keeps dying while starting: supervisord gave up after its retries; "
                    f"see {log}")
        if kind == "PROCESS_STATE_EXITED" and payload.get("expected") != "1":
            now = self._clock()
            deaths = self._deaths.setdefault(name, deque())
            deaths.append(now)
            metrics.PROCESS_EVENTS.labels(name, "died").inc()
            while deaths and deaths[0] < now - self.window:
                deaths.popleft()
            pid, was = payload.get("pid", "?"), payload.get("from_state")
            line = (f"{name} died (pid {pid}, was {was}); restarting it "
                    f"({len(deaths)} death(s) in the last {self.window:.0f}s)")
            if len(deaths) > self.limit:
                return line, (f"{name} keeps dying: {len(deaths)} deaths within "
                              f"{self.window:.0f}s; see {log}")
            return line, None
        if kind == "PROCESS_STATE_BACKOFF":
            metrics.PROCESS_EVENTS.labels(name, "backoff").inc()
            return f"{name} failed to start; trying again after a pause", None
        if kind == "PROCESS_STATE_RUNNING" and self._deaths.get(name):
            metrics.PROCESS_EVENTS.labels(name, "running_again").inc()
            return f"{name} running again (pid {payload.get('pid', '?')})", None
        return None, None


def watchdog(argv: Sequence[str] | None = None, stdin: TextIO = sys.stdin,
             stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    """The event listener's main loop (supervisord's listener protocol on stdin/stdout)."""
    parser = argparse.ArgumentParser(prog="kefu.supervision watchdog")
    parser.add_argument("--limit", type=int, default=5)
    parser.add_argument("--window", type=float, default=300.0)
    parser.add_argument("--gave-up", type=Path, required=True)
    parser.add_argument("--logs", type=Path, required=True)
    parser.add_argument("--metrics-port", type=int, default=0,
                        help="serve Prometheus /metrics on 127.0.0.1:PORT (0: off)")
    args = parser.parse_args(argv)
    if args.metrics_port:
        metrics.serve_locally(args.metrics_port)
    dog = Watchdog(limit=args.limit, window=args.window, logs=args.logs)
    while True:
        stdout.write("READY\n")
        stdout.flush()
        line = stdin.readline()
        if not line:
            return 0
        headers = _headers(line)
        body = stdin.read(int(headers.get("len", "0")))
        message, reason = dog.event(headers.get("eventname", ""), _headers(body))
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        if message:
            print(f"{stamp} {message}", file=stderr, flush=True)
        if reason:
            print(f"{stamp} giving up: {reason}", file=stderr, flush=True)
            args.gave_up.write_text(reason + "\n", encoding="utf-8")
            _shutdown()
        stdout.write("RESULT 2\nOK")
        stdout.flush()


def _shutdown() -> None:
    url = os.environ.get("SUPERVISOR_SERVER_URL", "")
    if url.startswith("unix://"):
        Supervisor(Path(url.removeprefix("unix://"))).shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kefu.supervision watchdog …`` (run by supervisord, not by hand)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] != ["watchdog"]:
        print("usage: python -m kefu.supervision watchdog --gave-up FILE --logs DIR",
              file=sys.stderr)
        return 2
    return watchdog(args[1:])


if __name__ == "__main__":
    sys.exit(main())
