"""The deployment files say what the README promises: real supervisors restart every part.

docker-compose.yml: every service restarts on failure and has a health check (Redis: AOF on a
named volume); only the gateway is published, Rasa stays on the compose network; secrets come
from .env, never written in. deploy/systemd: one unit per process, restarted always, Rasa on
127.0.0.1 with its token from the environment.
"""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = ("gateway", "rasa", "sweeper", "order-events")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_every_service_restarts_and_is_health_checked_but_the_sweeper_needs_only_redis() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", *PROCESSES}
    for name, service in services.items():
        assert service["restart"] in ("always", "unless-stopped"), name
        if name not in ("sweeper", "order-events"):
            assert service["healthcheck"]["test"], name
        if name != "redis":
            assert service["depends_on"] == {"redis": {"condition": "service_healthy"}}, name
            assert service["env_file"] == [".env"] and service["environment"]["KEFU_ENV"] == (
                "production"), name
    assert services["sweeper"]["command"][-2:] == ["-m", "handoff.sweeper"]
    assert services["order-events"]["command"][-2:] == ["-m", "orders.proactive"]


def test_redis_keeps_an_aof_on_a_volume_and_only_the_gateway_is_published() -> None:
    spec = compose()
    redis = spec["services"]["redis"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    volume = redis["volumes"][0].split(":")
    assert volume[1] == "/data" and volume[0] in spec["volumes"]
    published = {name for name, s in spec["services"].items() if s.get("ports")}
    assert published == {"gateway"}
    text = (ROOT / "docker-compose.yml").read_text()
    assert "change-me" not in text and "KEFU_RASA_TOKEN:" not in text


def test_systemd_units_restart_each_process_and_keep_rasa_on_loopback() -> None:
    for name in PROCESSES:
        unit = configparser.ConfigParser(strict=False, interpolation=None)
        unit.read(ROOT / "deploy" / "systemd" / f"kefu-{name}.service")
        service = unit["Service"]
        assert service["Restart"] == "always" and float(service["RestartSec"]) <= 5, name
        assert service["EnvironmentFile"].endswith(".env"), name
        assert int(unit["Unit"]["StartLimitBurst"]) >= 3, name
    rasa = configparser.ConfigParser(strict=False, interpolation=None)
    rasa.read(ROOT / "deploy" / "systemd" / "kefu-rasa.service")
    start = rasa["Service"]["ExecStart"]
    assert "--interface 127.0.0.1" in start and '"$KEFU_RASA_TOKEN"' in start
