"""The Rasa project files agree with each other, with the actions and with kefu's Redis keys."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

import actions as kefu_actions
from actions import policy
from actions.endpoint import ACTIONS_PREFIX, SECRET_HEADER, build_executor
from actions.services import Services
from kefu.keys import RASA_LOCK_PREFIX, RASA_TRACKER_PREFIX
from kefu.stack import StackConfig

RASA = Path(__file__).resolve().parents[3] / "bot" / "rasa"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((RASA / name).read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def domain() -> dict[str, Any]:
    return load("domain.yml")


def rule_steps() -> list[dict[str, str]]:
    return [step for rule in load("data/rules.yml")["rules"] for step in rule["steps"]]


def test_redis_key_prefix_builds_kefus_rasa_prefixes() -> None:
    endpoints = load("endpoints.yml")
    for store, expected in (("tracker_store", RASA_TRACKER_PREFIX), ("lock_store", RASA_LOCK_PREFIX)):
        prefix = endpoints[store]["key_prefix"]
        assert str(prefix).isalnum(), "Rasa 3.6 silently ignores a non-alphanumeric key_prefix"
        kind = store.removesuffix("_store")
        assert f"{prefix}:{kind}:" == expected  # what Rasa builds before the sender id


def test_endpoints_only_use_variables_the_stack_sets() -> None:
    lines = (RASA / "endpoints.yml").read_text(encoding="utf-8").splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    used = set(re.findall(r"\$\{(\w+)\}", text))
    assert used == {"KEFU_GATEWAY_URL", "KEFU_ACTION_SECRET", "KEFU_REDIS_HOST",
                    "KEFU_REDIS_PORT", "KEFU_REDIS_DB"}
    assert used <= set(StackConfig().env())
    assert '"${' not in text and "'${" not in text  # quoted scalars are not substituted


def test_rasa_calls_the_gateways_action_route_with_the_secret() -> None:
    endpoint = load("endpoints.yml")["action_endpoint"]
    assert endpoint["url"] == f"${{KEFU_GATEWAY_URL}}{ACTIONS_PREFIX}/webhook"
    assert endpoint["headers"] == {SECRET_HEADER: "${KEFU_ACTION_SECRET}"}
    # kefu's actions never read the domain; actions.endpoint gives rasa-sdk an empty one
    assert endpoint["enable_selective_domain"] is True


def test_every_intent_has_a_rule_and_every_rule_intent_exists(domain: dict[str, Any]) -> None:
    ruled = {step["intent"] for step in rule_steps() if "intent" in step}
    assert ruled == set(domain["intents"]) | {"nlu_fallback"}


def test_every_action_is_in_the_domain_and_served(domain: dict[str, Any]) -> None:
    served = set(build_executor(cast(Services, None)).actions)  # what the gateway serves
    assert set(domain["actions"]) == served
    used = {step["action"] for step in rule_steps() if "action" in step}
    rasa_builtin = {"action_deactivate_loop"}  # a form stopped by 转人工 (Rasa's own action)
    assert used <= served | set(domain["responses"]) | set(domain.get("forms", {})) | rasa_builtin


def test_every_response_speaks_chinese_and_english(domain: dict[str, Any]) -> None:
    for name, variations in domain["responses"].items():
        default = [v for v in variations if "condition" not in v]
        english = [v for v in variations if v.get("condition") == [
            {"type": "slot", "name": "language", "value": "en"}]]
        assert len(default) == 1 and len(english) == 1, name
        assert re.search(r"[\u4e00-\u9fff]", default[0]["text"]), name
        assert english[0]["text"].isascii(), name


def test_slots_set_by_actions_exist(domain: dict[str, Any]) -> None:
    package = Path(kefu_actions.__file__).parent
    source = "".join(p.read_text(encoding="utf-8") for p in package.glob("*.py"))
    set_by_actions = set(re.findall(r'SlotSet\("(\w+)"', source))
    assert set_by_actions | {policy.STUCK_SLOT, policy.PENDING_SLOT} <= set(domain["slots"])


def test_session_bounds_the_tracker(domain: dict[str, Any]) -> None:
    assert 0 < domain["session_config"]["session_expiration_time"] <= 24 * 60
