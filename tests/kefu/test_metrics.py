"""Each Prometheus metric counts what its definition says, on small hand-made histories."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import Counter, Histogram
from starlette.requests import Request

from actions.errors import KnowledgeUnavailableError
from actions.knowledge_client import KnowledgeClient
from bot.gateway.errors import UpstreamUnavailable
from bot.gateway.rasa_client import RasaClient
from kefu import metrics
from kefu.redis import async_client
from knowledge.models import Decision, DecisionKind, Entry
from tests.helpers.processes import free_port, wait_for_port


def value(metric: Counter | Histogram, *labels: str, suffix: str = "total") -> float:
    """The current value of one sample (a counter's total, a histogram's count)."""
    name = metric._name  # type: ignore[attr-defined]
    names = metric._labelnames  # type: ignore[attr-defined]
    wanted = dict(zip(names, labels, strict=True))
    for family in metrics.REGISTRY.collect():
        for sample in family.samples:
            if sample.name == f"{name}_{suffix}" and sample.labels == wanted:
                return float(sample.value)
    return 0.0


class Source:
    """A knowledge service answering a fixed list of decision kinds, or failing."""

    def __init__(self, kinds: list[DecisionKind | None]) -> None:
        self.kinds = kinds

    def decide(self, text: str, *, at: datetime | None = None, intent: str | None = None,
               intent_confidence: float | None = None) -> Decision:
        kind = self.kinds.pop(0)
        if kind is None:
            raise RuntimeError("index not ready")
        return Decision(kind=kind, text=text, at=at or datetime.now(), candidates=[])

    def entry(self, entry_id: str) -> Entry | None:
        return None


async def test_decisions_by_kind_and_knowledge_latency() -> None:
    kinds = [DecisionKind.ANSWER, DecisionKind.ANSWER, DecisionKind.CLARIFY, None]
    before = {k: value(metrics.DECISIONS, k.value) for k in DecisionKind}
    timed = value(metrics.KNOWLEDGE_LATENCY, suffix="count")
    failed = value(metrics.ERRORS, "knowledge")
    client = KnowledgeClient(Source(kinds))
    for _ in range(3):
        await client.decide("退款多久到账")
    with pytest.raises(KnowledgeUnavailableError):
        await client.decide("退款多久到账")
    after = {k: value(metrics.DECISIONS, k.value) for k in DecisionKind}
    assert {k: after[k] - before[k] for k in DecisionKind} == {
        DecisionKind.ANSWER: 2, DecisionKind.CLARIFY: 1, DecisionKind.HANDOFF: 0}
    assert value(metrics.KNOWLEDGE_LATENCY, suffix="count") - timed == 4  # failures timed too
    assert value(metrics.ERRORS, "knowledge") - failed == 1


async def test_rasa_latency_and_errors() -> None:
    answers = iter([httpx.Response(200, json=[{"text": "您好"}]), httpx.Response(503)])
    rasa = RasaClient("http://rasa.test", "t",
                      transport=httpx.MockTransport(lambda _request: next(answers)))
    timed, failed = value(metrics.RASA_LATENCY, suffix="count"), value(metrics.ERRORS, "rasa")
    assert [m.text for m in await rasa.send("web:a", "hi", {})] == ["您好"]
    with pytest.raises(UpstreamUnavailable):
        await rasa.send("web:a", "hi", {})
    await rasa.aclose()
    assert value(metrics.RASA_LATENCY, suffix="count") - timed == 2
    assert value(metrics.ERRORS, "rasa") - failed == 1


def request_from(host: str, authorization: str | None = None) -> Request:
    headers = [(b"authorization", authorization.encode())] if authorization else []
    return Request({"type": "http", "client": (host, 1234), "headers": headers})


def test_who_may_read_metrics() -> None:
    assert metrics.allowed(request_from("127.0.0.1"), token="")
    assert metrics.allowed(request_from("::1"), token="")
    assert not metrics.allowed(request_from("10.0.0.7"), token="")
    assert metrics.allowed(request_from("10.0.0.7", "Bearer s3"), token="s3")
    assert not metrics.allowed(request_from("127.0.0.1"), token="s3")  # a token is then needed
    assert not metrics.allowed(request_from("10.0.0.7", "Bearer nope"), token="s3")


def test_channel_of() -> None:
    assert metrics.channel_of("telegram:12345") == "telegram"
    assert metrics.channel_of("web:a:b") == "web"


def test_the_sample_dashboard_reads_metrics_that_exist() -> None:
    import json
    import re

    dashboard = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "kefu-dashboard.json"
    exprs = [t["expr"] for p in json.loads(dashboard.read_text())["panels"] for t in p["targets"]]
    used = {re.sub(r"_(bucket|total|count|sum)$", "", n)
            for e in exprs for n in re.findall(r"\b(kefu_\w+)", e)}
    info = metrics.RedisInfo()
    info.info, info.refreshed = {f: 1 for f, *_ in metrics._REDIS_FIELDS}, True
    serve = (Path(__file__).resolve().parents[2] / "bot" / "rasa" / "serve.py").read_text()
    defined = {family.name for family in [*metrics.REGISTRY.collect(), *info.collect()]}
    defined |= set(re.findall(r'"(kefu_rasa_\w+)"', serve))  # the Rasa process' own
    assert used and used <= defined, used - defined


@pytest.mark.redis
async def test_redis_info_reports_memory_clients_and_ops(redis_url: str) -> None:
    client = async_client(redis_url)
    await client.set("kefu:test:metrics", "1")
    collector = metrics.RedisInfo()
    assert list(collector.collect()) == []  # a process that never read INFO says nothing
    await collector.refresh(client)
    await client.aclose()
    got = {s.name: s.value for f in collector.collect() for s in f.samples if not s.labels}
    assert got["kefu_redis_up"] == 1
    assert got["kefu_redis_used_memory_bytes"] > 100_000
    assert got["kefu_redis_connected_clients"] >= 1
    assert got["kefu_redis_commands_processed_total"] >= 1
    assert "kefu_redis_ops_per_second" in got
    keys = [s for f in collector.collect() for s in f.samples if s.name == "kefu_redis_keys"]
    assert any(s.labels.get("db") == "db0" and s.value >= 1 for s in keys)


async def test_redis_down_is_reported_not_raised() -> None:
    gone = async_client(f"redis://127.0.0.1:{free_port()}/0")
    failed = value(metrics.ERRORS, "redis")
    collector = metrics.RedisInfo()
    await collector.refresh(gone)
    await gone.aclose()
    assert [(s.name, s.value) for f in collector.collect() for s in f.samples] == [
        ("kefu_redis_up", 0)]
    assert value(metrics.ERRORS, "redis") - failed == 1


@pytest.mark.redis
async def test_the_gateways_route_reads_redis_on_each_scrape(redis_url: str) -> None:
    client = async_client(redis_url)
    app = FastAPI()
    app.include_router(metrics.create_router(client))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 4321))
    async with httpx.AsyncClient(transport=transport, base_url="http://kefu") as http:
        text = (await http.get("/metrics")).text
        await client.set("kefu:test:metrics:more", "x" * 200_000)
        again = (await http.get("/metrics")).text
    await client.delete("kefu:test:metrics:more")
    await client.aclose()
    memory = [float(line.split()[1]) for t in (text, again) for line in t.splitlines()
              if line.startswith("kefu_redis_used_memory_bytes ")]
    assert "kefu_redis_up 1.0" in text and memory[1] > memory[0]  # fresh at every scrape


def test_python_m_kefu_metrics_runs_a_module_with_its_metrics_served() -> None:
    served, metered = free_port(), free_port()
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(  # http.server stands in for orders.demo: its args must reach it
        [sys.executable, "-m", "kefu.metrics", "--port", str(metered), "http.server",
         str(served), "--bind", "127.0.0.1"], cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(served, 30, proc)
        wait_for_port(metered, 30, proc)
        scraped = httpx.get(f"http://127.0.0.1:{metered}/metrics").text
        assert httpx.get(f"http://127.0.0.1:{served}/").status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
    rss = [line for line in scraped.splitlines()
           if line.startswith("process_resident_memory_bytes ")]
    assert rss and float(rss[0].split()[1]) > 1_000_000
    assert "# TYPE kefu_messages_total counter" in scraped  # kefu's registry, not a copy
