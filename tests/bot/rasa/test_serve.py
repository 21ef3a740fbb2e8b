"""bot/rasa/serve.py's patches behave as the Rasa 3.6 code they replace.

The check runs in the Rasa venv (tests/helpers/rasa_serve_check.py) against Rasa's own
``RedisTrackerStore._merge_trackers``, ``RemoteAction._validate_action_result``,
``RemoteAction._action_call_format``, ``Event.resolve_by_type`` and ``DaskGraphRunner.run`` (on
the trained model of this checkout), and posts to a small aiohttp
server for the pooled ``EndpointConfig.request``; that the patched server still runs the actions
in the gateway is covered by the e2e tests, which start Rasa through serve.py (kefu.stack).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kefu.stack import latest_model

pytestmark = pytest.mark.rasa


@pytest.fixture(scope="module")
def check(repo_root: Path) -> dict[str, Any]:
    python = repo_root / ".venv-rasa" / "bin" / "python"
    if not python.exists():
        pytest.fail("the Rasa venv is missing: run `make setup`")
    out = subprocess.run(
        [str(python), str(repo_root / "tests/helpers/rasa_serve_check.py"),
         str(repo_root / "bot/rasa/serve.py"), str(latest_model(repo_root / "models"))],
        capture_output=True, text=True, timeout=300, cwd=repo_root,
        env={**os.environ, "PYTHONPATH": str(repo_root)})  # the model's NLU component is kefu's
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_the_linear_merge_gives_rasas_merged_tracker(check: dict[str, Any]) -> None:
    merge = check["merge"]
    sizes = merge.pop("sizes")
    assert merge and all(case["same"] for case in merge.values()), merge
    # the case save() meets on every turn: stored sessions + the new turn, nothing doubled
    assert merge["last session + new turn"]["events"] == sum(sizes.values())
    assert merge["whole tracker + new turn"]["events"] == sum(sizes.values())


def test_responses_are_still_validated_with_rasas_error(check: dict[str, Any]) -> None:
    validate = check["validate"]
    assert validate["patched"]
    assert validate["good"] == [True, True]
    theirs, ours = validate["bad"]
    assert ours is not None and ours == theirs
    assert "Failed to validate Action server response" in ours


def test_every_response_gets_rasas_verdict_and_error(check: dict[str, Any]) -> None:
    verdicts = check["validate"]["verdicts"]
    assert len(verdicts) == 20
    for theirs, ours in verdicts:
        assert ours == theirs
    assert sum(1 for theirs, _ in verdicts if theirs is True) == 4


def test_graphs_run_without_dask_give_rasas_parses_and_predictions(
        check: dict[str, Any]) -> None:
    graph = check["graph"]
    assert graph["patched"]
    assert graph["parses"] == [True] * 8
    assert graph["predictions"] == [True] * 3


def test_event_types_resolve_as_rasas_walk_did(check: dict[str, Any]) -> None:
    resolve = check["resolve"]
    assert resolve["patched"] and resolve["names"] >= 20 and resolve["same"]
    assert resolve["topic"] == [None, None] and resolve["default"] == [True, True]
    theirs, ours = resolve["unknown"]
    assert ours == theirs == "Unknown event name 'no_such_event'."


def test_action_calls_carry_the_current_turn_and_everything_else_as_before(
        check: dict[str, Any]) -> None:
    formats = check["call_format"]
    assert formats.pop("patched")
    for name, case in formats.items():
        assert case["same_otherwise"], name  # sender, slots, latest message, version, domain
        assert case["ours_are_the_turn"] and case["events"][1] == 2, name
    assert formats["full"]["domain"] and not formats["selective"]["domain"]
    theirs, ours = formats["selective"]["bytes"]
    assert ours * 10 < theirs  # 21 turns into the conversation


def test_action_calls_share_one_connection_and_send_the_endpoints_headers(
        check: dict[str, Any]) -> None:
    pooled = check["pooled"]
    assert pooled["patched"] and pooled["answers"]
    assert pooled["connections"] == 1
    assert pooled["secrets"] == ["s"] * 5


def test_jieba_is_loaded_before_the_first_message(check: dict[str, Any]) -> None:
    assert check["warm_up"] == {"before": False, "after": True}
