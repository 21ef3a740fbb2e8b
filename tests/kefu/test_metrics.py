"""Each Prometheus metric counts what its definition says, on small hand-made histories."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest
from prometheus_client import Counter, Histogram
from starlette.requests import Request

from actions.errors import KnowledgeUnavailableError
from actions.knowledge_client import KnowledgeClient
from bot.gateway.errors import UpstreamUnavailable
from bot.gateway.rasa_client import RasaClient
from kefu import metrics
from knowledge.models import Decision, DecisionKind, Entry


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
    from pathlib import Path

    dashboard = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "kefu-dashboard.json"
    exprs = [t["expr"] for p in json.loads(dashboard.read_text())["panels"] for t in p["targets"]]
    used = {re.sub(r"_(bucket|total|count|sum)$", "", n)
            for e in exprs for n in re.findall(r"\b(kefu_\w+)", e)}
    defined = {family.name for family in metrics.REGISTRY.collect()}
    assert used and used <= defined, used - defined
