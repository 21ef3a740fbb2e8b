"""supervisord keeps the stack's processes alive, logs it, and gives up loudly on a crash loop.

A real supervisord (from the venv) runs tiny stand-in programs, so the restarts and the give-up
are supervisord's and the watchdog's own; the stack's real programs are exercised by the e2e
fault tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import kefu.stack
from kefu import metrics
from kefu.stack import StackConfig, StackError, run_stack
from kefu.supervision import (
    Program,
    Supervisor,
    Watchdog,
    gave_up,
    socket_path,
    start_supervisord,
    stop_supervisord,
    supervisor_config,
)

pytestmark = pytest.mark.slow

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]
CRASHER = [sys.executable, "-c", "import sys; print('cannot start', flush=True); sys.exit(3)"]
LATE_CRASHER = [sys.executable, "-c", "import time; time.sleep(1.5); raise SystemExit(1)"]


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what} not within {timeout}s")
        time.sleep(0.1)
    return time.monotonic() - start


class Running:
    def __init__(self, state: Path, daemon: subprocess.Popen[bytes]) -> None:
        self.state = state
        self.daemon = daemon
        self.supervisor = Supervisor(socket_path(state))

    def watchdog_log(self) -> str:
        log = self.state / "logs" / "watchdog.log"
        return log.read_text() if log.exists() else ""


@pytest.fixture
def supervise(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    daemons: list[subprocess.Popen[bytes]] = []

    def start(*programs: Program, limit: int = 5, window: float = 300.0) -> Running:
        logs = tmp_path / "logs"
        text = supervisor_config(programs, state_dir=tmp_path, logs=logs, root=tmp_path,
                                 limit=limit, window=window)
        daemon = start_supervisord(text, state_dir=tmp_path, logs=logs, env=os.environ,
                                   cwd=tmp_path)
        daemons.append(daemon)
        wait_for(lambda: socket_path(tmp_path).exists(), 20, "supervisord's socket")
        return Running(tmp_path, daemon)

    yield start
    for daemon in daemons:
        stop_supervisord(daemon, timeout=30)


def test_a_killed_process_is_back_within_seconds_and_it_is_logged(supervise) -> None:
    running = supervise(Program("worker", SLEEPER, startsecs=1))
    sup = running.supervisor
    wait_for(lambda: sup.info("worker")["statename"] == "RUNNING", 15, "worker running")
    first = sup.pid("worker")
    os.kill(first, signal.SIGKILL)
    took = wait_for(lambda: sup.pid("worker") not in (0, first), 15, "a new worker")
    assert took < 15
    wait_for(lambda: "worker running again" in running.watchdog_log(), 15, "the return logged")
    assert f"worker died (pid {first}, was RUNNING)" in running.watchdog_log()
    assert running.daemon.poll() is None  # the stack stays up


def test_a_process_that_cannot_start_makes_supervisord_give_up_with_its_name(supervise) -> None:
    running = supervise(Program("sleeper", SLEEPER, startsecs=1),
                        Program("broken", CRASHER, startsecs=2, startretries=2))
    wait_for(lambda: running.daemon.poll() is not None, 60, "supervisord to give up")
    reason = gave_up(running.state)
    assert reason is not None and reason.startswith("broken keeps dying while starting")
    assert str(running.state / "logs" / "broken.log") in reason
    assert "cannot start" in (running.state / "logs" / "broken.log").read_text()
    assert "broken failed to start; trying again after a pause" in running.watchdog_log()


def test_a_process_that_keeps_dying_after_starting_stops_the_stack(supervise) -> None:
    running = supervise(Program("flaky", LATE_CRASHER, startsecs=1), limit=2, window=60)
    wait_for(lambda: running.daemon.poll() is not None, 60, "supervisord to give up")
    reason = gave_up(running.state)
    assert reason is not None and reason.startswith("flaky keeps dying: 3 deaths within 60s")


def test_run_stack_reports_why_it_gave_up(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kefu.stack, "programs",
                        lambda _config, _model: [Program("gateway", CRASHER, startretries=1)])
    config = StackConfig(state_dir=tmp_path, rasa_token="t-0123456789", action_secret="a-012345")
    with pytest.raises(StackError, match=r"^gateway keeps dying while starting.*gateway\.log"), \
            run_stack(config, model=tmp_path / "model.tar.gz"):
        pass


@pytest.mark.parametrize("placeholder", ["change-me", ""])
def test_run_stack_refuses_placeholder_secrets(tmp_path: Path, placeholder: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEFU_RASA_TOKEN", raising=False)
    config = StackConfig(root=tmp_path, state_dir=tmp_path, rasa_token=placeholder,
                         action_secret="a-0123456789")
    with pytest.raises(StackError, match="KEFU_RASA_TOKEN is not set or is a placeholder"), \
            run_stack(config, model=tmp_path / "model.tar.gz"):
        pass


def test_rasa_and_the_gateway_listen_on_loopback_by_default(tmp_path: Path) -> None:
    config = StackConfig(state_dir=tmp_path, rasa_token="t", action_secret="a", start_redis=False)
    by_name = {p.name: list(p.command) for p in kefu.stack.programs(config, tmp_path / "m")}
    rasa, gateway = by_name["rasa"], by_name["gateway"]
    assert rasa[rasa.index("--interface") + 1] == "127.0.0.1"
    assert gateway[gateway.index("--host") + 1] == "127.0.0.1"
    assert "sweeper" in by_name  # the lease sweeper does not live in a gateway


def test_the_watchdog_counts_deaths_per_process_within_its_window() -> None:
    now = [0.0]
    dog = Watchdog(limit=2, window=10, logs=Path("/logs"), clock=lambda: now[0])
    died = {"processname": "rasa", "from_state": "RUNNING", "pid": "7", "expected": "0"}
    assert dog.event("PROCESS_STATE_EXITED", died)[1] is None
    now[0] = 5
    assert dog.event("PROCESS_STATE_EXITED", died)[1] is None
    assert dog.event("PROCESS_STATE_EXITED", {**died, "processname": "gateway"})[1] is None
    now[0] = 16  # both deaths left the window
    assert dog.event("PROCESS_STATE_EXITED", died)[1] is None
    now[0] = 17
    assert dog.event("PROCESS_STATE_EXITED", died)[1] is None
    now[0] = 18
    line, reason = dog.event("PROCESS_STATE_EXITED", died)
    assert line is not None and reason == "rasa keeps dying: 3 deaths within 10s; see /logs/rasa.log"
    assert dog.event("PROCESS_STATE_EXITED", {**died, "expected": "1"}) == (None, None)  # stopped


def test_the_watchdog_counts_process_events_for_its_metrics() -> None:
    def seen(program: str, event: str) -> float:
        return metrics.PROCESS_EVENTS.labels(program, event)._value.get()  # type: ignore[attr-defined]

    before = {e: seen("orders", e) for e in ("died", "running_again", "backoff", "fatal")}
    dog = Watchdog(limit=5, window=10, logs=Path("/logs"))
    event = {"processname": "orders", "from_state": "RUNNING", "pid": "7", "expected": "0"}
    dog.event("PROCESS_STATE_RUNNING", event)  # the first start is not a return
    dog.event("PROCESS_STATE_EXITED", event)
    dog.event("PROCESS_STATE_EXITED", {**event, "expected": "1"})  # stopped on purpose
    dog.event("PROCESS_STATE_BACKOFF", event)
    dog.event("PROCESS_STATE_RUNNING", event)
    dog.event("PROCESS_STATE_FATAL", event)
    after = {e: seen("orders", e) for e in before}
    assert {e: after[e] - before[e] for e in before} == {
        "died": 1, "running_again": 1, "backoff": 1, "fatal": 1}


def test_metered_programs_run_under_kefu_metrics_on_their_ports(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    monkeypatch.delenv("KEFU_ORDERS_URL", raising=False)
    ports = {"sweeper": 9101, "rasa": 9102, "orders": 9103, "order-events": 9104,
             "watchdog": 9105}
    config = StackConfig(state_dir=tmp_path, rasa_token="t", action_secret="a",
                         start_redis=False, metrics_ports=ports)
    by_name = {p.name: list(p.command) for p in kefu.stack.programs(config, tmp_path / "m")}
    assert by_name["orders"][1:6] == ["-m", "kefu.metrics", "--port", "9103", "orders.demo"]
    assert by_name["order-events"][1:6] == ["-m", "kefu.metrics", "--port", "9104",
                                            "orders.proactive"]
    assert by_name["sweeper"][-2:] == ["--metrics-port", "9101"]
    assert by_name["rasa"][2:5] == ["--metrics-port", "9102", "run"]
    assert [p.name for p in kefu.stack.programs(config, tmp_path / "m")].count("sweeper") == 1
    text = supervisor_config(kefu.stack.programs(config, tmp_path / "m"), state_dir=tmp_path,
                             logs=tmp_path, root=tmp_path, limit=5, window=60,
                             metrics_port=ports["watchdog"])
    assert "--metrics-port 9105" in text.split("[eventlistener:watchdog]")[1].split("\n")[1]
