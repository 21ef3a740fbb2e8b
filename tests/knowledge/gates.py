"""A gate on calibration, so tests can publish or roll back *while* a runtime calibrates.

Calibrating (asking a knowledge base its held-out questions) takes seconds on the real model but
milliseconds with the stand-in encoder; holding it open makes "during calibration" deterministic.
Only calibrations with held-out questions are held (a provisional index is built at once); the
real `profile` still runs once the gate opens, so nothing about the result is faked.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import knowledge.calibration
import knowledge.service


class CalibrationGate:
    """Holds every calibration in this process until `open` (or fails them, ``fail``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0  # calibrations that reached the gate
        self.fail = 0  # how many of the next calibrations raise instead
        self._open = threading.Event()
        self._lock = threading.Lock()
        real: Callable[..., Any] = knowledge.calibration.profile  # what knowledge.service calls
        monkeypatch.setattr(knowledge.service, "profile", self._gated(real))

    def open(self) -> None:
        """Let held and later calibrations through."""
        self._open.set()

    async def reached(self, calls: int, timeout: float = 10.0) -> None:
        """Wait until ``calls`` calibrations have reached the gate."""
        deadline = time.monotonic() + timeout
        while self.calls < calls:
            assert time.monotonic() < deadline, f"{self.calls} of {calls} calibrations started"
            await asyncio.sleep(0.01)

    def _gated(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def calibrate(*args: Any, **kwargs: Any) -> Any:
            if not kwargs.get("with_held_out", True):
                return real(*args, **kwargs)  # a provisional index: not a calibration
            with self._lock:
                self.calls += 1
                failing, self.fail = self.fail > 0, max(self.fail - 1, 0)
            if not self._open.wait(timeout=30):
                raise TimeoutError("the calibration gate was never opened")
            if failing:
                raise RuntimeError("calibration failed (test)")
            return real(*args, **kwargs)

        return calibrate
