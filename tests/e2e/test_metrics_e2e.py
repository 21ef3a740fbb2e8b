"""Every process of the running stack serves Prometheus metrics, scraped here as Prometheus would.

The gateway on its own ``/metrics`` (with Redis' INFO figures); the sweeper, Rasa, the demo order
service, the order-events poller and supervisord's watchdog each on 127.0.0.1:their port.
"""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kefu.stack import METERED, StackConfig
from tests.e2e.conftest import RestChat

pytestmark = [pytest.mark.rasa, pytest.mark.redis, pytest.mark.model, pytest.mark.slow]


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics page: (name, sorted labels) → value."""
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200, url
    assert response.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels``."""
    return sum(v for (n, ls), v in samples.items()
               if n == name and set(labels.items()) <= set(ls))


@pytest.mark.parametrize("program", METERED)
def test_each_process_serves_its_own_metrics_on_loopback(stack: StackConfig, program: str) -> None:
    port = stack.metrics_ports[program]
    samples = scrape(f"http://127.0.0.1:{port}/metrics")
    assert total(samples, "process_resident_memory_bytes") > 10_000_000  # a real Python process
    assert total(samples, "process_cpu_seconds_total") > 0
    if program == "sweeper":  # its own figures, not only the process'
        assert total(samples, "kefu_sweeper_runs_total") >= 1


def test_rasa_counts_the_messages_it_answered_and_its_action_calls(stack: StackConfig) -> None:
    url = f"http://127.0.0.1:{stack.metrics_ports['rasa']}/metrics"
    before = scrape(url)
    RestChat(stack, "web:metrics-e2e").say("退货运费谁出")  # answered by the knowledge action
    after = scrape(url)
    rest = {"route": "/webhooks/rest/webhook", "method": "POST", "status": "2xx"}
    assert (total(after, "kefu_rasa_http_seconds_count", **rest)
            - total(before, "kefu_rasa_http_seconds_count", **rest)) == 1
    assert (total(after, "kefu_rasa_action_call_seconds_count", outcome="ok")
            > total(before, "kefu_rasa_action_call_seconds_count", outcome="ok"))


def test_the_gateway_exports_redis_info(stack: StackConfig) -> None:
    samples = scrape(f"{stack.gateway_url}/metrics")
    assert total(samples, "kefu_redis_up") == 1
    assert total(samples, "kefu_redis_used_memory_bytes") > 0
    assert total(samples, "kefu_redis_connected_clients") >= 2  # the gateway, the sweeper, …
    assert total(samples, "kefu_redis_commands_processed_total") > 0
    assert total(samples, "kefu_redis_keys", db="db0") > 0
    assert total(samples, "kefu_http_seconds_count") > 0  # and the gateway's own figures


def test_metrics_ports_listen_on_loopback_only(stack: StackConfig) -> None:
    for program, port in stack.metrics_ports.items():
        with open("/proc/net/tcp", encoding="ascii") as table:
            listening = [line.split()[1] for line in table.read().splitlines()[1:]
                         if line.split()[3] == "0A"]  # LISTEN
        assert f"0100007F:{port:04X}" in listening, program  # 127.0.0.1, not 0.0.0.0
