"""bot/rasa/stores.py, kefu's tracker and lock stores for Rasa, against a real redis-server.

The check runs in the Rasa venv (tests/helpers/rasa_stores_check.py), beside Rasa's own
``RedisTrackerStore`` for the conversations it wrote and with the trained model's policies for
bounded sessions; that a real Rasa server runs on these
stores is covered by the e2e tests (kefu.stack starts Rasa with bot/rasa/endpoints.yml).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kefu.stack import latest_model

pytestmark = [pytest.mark.rasa, pytest.mark.redis]


@pytest.fixture(scope="module")
def check(repo_root: Path, redis_port: int) -> dict[str, Any]:
    python = repo_root / ".venv-rasa" / "bin" / "python"
    if not python.exists():
        pytest.fail("the Rasa venv is missing: run `make setup`")
    out = subprocess.run(
        [str(python), str(repo_root / "tests/helpers/rasa_stores_check.py"),
         f"redis://127.0.0.1:{redis_port}/0", str(latest_model(repo_root / "models"))],
        capture_output=True, text=True, timeout=300, cwd=repo_root,
        env={**os.environ, "PYTHONPATH": str(repo_root)})
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_a_conversation_reads_back_as_saved(check: dict[str, Any]) -> None:
    tracker = check["tracker"]
    assert tracker["round_trip"] and tracker["missing"]
    assert tracker["after_append"] == {"stored": 11, "events": 11, "same": True, "ttl": 3600}
    assert tracker["keys"] == ["web:alice", "web:old"]


def test_a_message_costs_one_round_trip_to_read_and_one_to_save(check: dict[str, Any]) -> None:
    assert (check["tracker"]["retrieve_calls"], check["tracker"]["save_calls"]) == (1, 1)
    assert check["lock"]["calls"] == 2  # take the ticket, give it back


def test_a_new_session_replaces_the_stored_one(check: dict[str, Any]) -> None:
    assert check["tracker"]["new_session"] == {"stored": 7, "session": 7, "same": True}


def test_two_writers_of_one_conversation_lose_nothing(check: dict[str, Any]) -> None:
    assert check["tracker"]["conflict_texts"] == ["later", "one", "two"]


def test_conversations_rasas_own_store_wrote_are_read_and_migrated(
        check: dict[str, Any]) -> None:
    assert check["tracker"]["legacy_read"]  # the last session, as Rasa's store returns it
    assert check["tracker"]["legacy_saved"] == {"type": "list", "same": True}


def test_one_conversation_at_a_time_others_in_parallel(check: dict[str, Any]) -> None:
    lock = check["lock"]
    assert lock["order"] == ["a+", "c+", "c-", "a-", "b+", "b-"]
    assert lock["key_gone"] and lock["legacy_replaced"] == "zset"


def test_an_abandoned_ticket_expires_and_a_late_waiter_is_told(check: dict[str, Any]) -> None:
    assert check["lock"]["waited_for_expiry"] < 1.0
    assert check["lock"]["expired_waiter"] == [
        "Could not acquire lock for conversation_id 'web:gina'."]


def test_a_long_session_is_bounded_and_predicts_as_the_whole_one(check: dict[str, Any]) -> None:
    bounded = check["bounded"]
    full, kept = bounded["events"]
    assert full > 700 and kept <= 110  # 150 turns, kept: a session start and the latest turns
    assert bounded["slots_same"] and bounded["later_slots_same"]
    assert bounded["order_number"] == "123456789012345674"  # set at turn 4, long cut away
    assert bounded["predictions"] and all(bounded["predictions"])  # every intent, next action
    assert bounded["stored_after_10_more_turns"] <= 200 and bounded["latest"] == "m159"
