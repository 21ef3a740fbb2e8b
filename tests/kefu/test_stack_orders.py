"""The stack runs the demo store's order service, unless the store configured its own."""

from __future__ import annotations

from pathlib import Path

import pytest

import kefu.stack
from kefu.stack import StackConfig


def test_the_demo_order_service_is_a_program_of_the_stack(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEFU_ORDERS_URL", raising=False)
    config = StackConfig(state_dir=tmp_path, rasa_token="t", action_secret="a", start_redis=False,
                         orders_port=8799, orders_api_key="k")
    by_name = {p.name: list(p.command) for p in kefu.stack.programs(config, tmp_path / "m")}
    orders = by_name["orders"]
    assert orders[1:3] == ["-m", "orders.demo"]
    assert orders[orders.index("--port") + 1] == "8799"
    assert orders[orders.index("--db") + 1] == str(tmp_path / "orders" / "demo.sqlite")
    env = config.env()
    assert env["KEFU_ORDERS_URL"] == "http://127.0.0.1:8799" and env["KEFU_ORDERS_API_KEY"] == "k"


def test_a_stores_own_order_system_replaces_the_demo(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEFU_ORDERS_URL", "https://shop.example.com/kefu/v1")
    monkeypatch.setenv("KEFU_ORDERS_API_KEY", "store-key")
    config = StackConfig(state_dir=tmp_path, rasa_token="t", action_secret="a", start_redis=False)
    names = {p.name for p in kefu.stack.programs(config, tmp_path / "m")}
    assert "orders" not in names and {"gateway", "rasa"} <= names
    env = config.env()
    assert env["KEFU_ORDERS_URL"] == "https://shop.example.com/kefu/v1"
    assert env["KEFU_ORDERS_API_KEY"] == "store-key"
