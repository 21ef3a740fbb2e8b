"""``kefu kb diff|check|calendar|audit|topics|draft|publish-draft`` and the gated ``kb publish``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

import knowledge.service
from kefu.cli import main
from kefu.escalations import record_escalation
from kefu.redis import async_client
from knowledge.loader import dump_yaml
from knowledge.models import KnowledgeBase, TestQuestion
from knowledge.settings import get_settings
from tests.knowledge.conftest import DOUBLE11_START, shop_kb
from tests.knowledge.fakes import HashingEncoder

pytestmark = pytest.mark.redis

TESTED = KnowledgeBase(entries=shop_kb().entries, tests=(
    TestQuestion(text="积分怎么用", expected="points"),
    TestQuestion(text="双11期间多久发货", expected="ship-time-d11",
                 at=DOUBLE11_START + timedelta(days=1)),
))


@pytest.fixture(autouse=True)
def env(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("KEFU_REDIS_URL", redis_url)
    monkeypatch.setenv("KEFU_DEMO_STORE", "/nonexistent.yaml")
    encoders = (HashingEncoder(), None)
    monkeypatch.setattr(knowledge.service, "shared_encoders", lambda settings=None: encoders)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def write(path: Path, kb: KnowledgeBase) -> Path:
    path.write_text(dump_yaml(kb), encoding="utf-8")
    return path


def test_diff_check_publish_with_the_gate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    live = write(tmp_path / "live.yaml", TESTED)
    assert main(["kb", "publish", str(live), "--author", "alice"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("published ") and out[1].startswith("2 test questions: new 100.0%")
    first = out[0].split()[1]

    worse = write(tmp_path / "worse.yaml", KnowledgeBase(
        entries=tuple(e for e in shop_kb().entries if e.id != "points")))
    assert main(["kb", "diff", str(worse)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"against {first}: 0 added, 0 changed, 1 removed, 5 unchanged"
    assert "- points: 积分怎么用" in lines and "- test: 积分怎么用 -> points" in lines

    assert main(["kb", "check", str(worse)]) == 1  # CI fails: the gate would refuse
    out = capsys.readouterr().out
    assert "test gate: 2 test questions: new 50.0%, live 100.0%: refused" in out
    assert "policy: answer at confidence" in out and "5 of 5 entries have variants" in out
    assert "«积分怎么用» expect points: live points ✓, new" in out

    assert main(["kb", "publish", str(worse), "--author", "bob"]) == 2
    err = capsys.readouterr().err
    assert "refused: answers worse than the live version" in err
    assert "publish with an override reason" in err
    assert main(["kb", "versions"]) == 0
    versions = capsys.readouterr().out.splitlines()[1:]
    assert len(versions) == 1 and versions[0].startswith(f" * {first}")  # nothing published

    assert main(["kb", "publish", str(worse), "--author", "bob",
                 "--override-reason", "points retired"]) == 0
    assert "(overridden)" in capsys.readouterr().out
    assert main(["kb", "audit"]) == 0
    audit = capsys.readouterr().out.splitlines()
    assert "gate_override" in audit[0] and "bob" in audit[0] and "points retired" in audit[0]
    assert "publish" in audit[1] and "[gate override: points retired]" in audit[1]


def test_publish_without_tests_needs_no_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_model(settings: object = None) -> None:
        raise AssertionError("the model must not load without test questions")

    monkeypatch.setattr(knowledge.service, "shared_encoders", no_model)
    assert main(["kb", "publish", str(write(tmp_path / "kb.yaml", shop_kb()))]) == 0
    assert capsys.readouterr().out.startswith("published ")


def test_merge_diff_and_calendar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kb", "publish", str(write(tmp_path / "kb.yaml", shop_kb()))]) == 0
    capsys.readouterr()
    d11 = next(e for e in shop_kb().entries if e.campaign)
    d12 = d11.model_copy(update={"id": "ship-time-d12", "campaign": "double12",
                                 "question": "双12期间多久发货", "variants": ("双十二几天发货",),
                                 "valid_from": d11.valid_from.replace(month=12, day=8),
                                 "valid_until": d11.valid_until.replace(month=12, day=12)})
    campaign = write(tmp_path / "d12.yaml", KnowledgeBase(entries=(d12,)))
    assert main(["kb", "diff", str(campaign), "--merge"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("1 added, 0 changed, 0 removed, 6 unchanged")
    assert main(["kb", "calendar"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "double11: 2025-11-01 00:00 → 2025-11-11 23:59 [expired]"
    assert out[1].split()[0] == "ship-time-d11"


def test_topics_draft_and_publish_draft(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], redis_url: str,
) -> None:
    assert main(["kb", "publish", str(write(tmp_path / "kb.yaml", shop_kb()))]) == 0
    capsys.readouterr()
    assert main(["kb", "topics"]) == 0
    assert capsys.readouterr().out.strip() == "no open topics"

    async def escalate() -> None:
        redis = async_client(redis_url)
        for conversation in ("web:1", "web:2", "web:3"):
            await record_escalation(redis, "可以礼品包装吗", "handoff", conversation)
        await record_escalation(redis, "你们老板是谁", "low_confidence", "web:4")
        await redis.aclose()

    asyncio.run(escalate())
    assert main(["kb", "topics"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert " 3 conversations, 3 questions; live: " in out[0]
    assert out[1] == "  question: 可以礼品包装吗"
    topic_id = out[0].split()[0]
    assert main(["kb", "topics", "--json"]) == 0
    assert f'"id": "{topic_id}"' in capsys.readouterr().out

    assert main(["kb", "draft", topic_id]) == 2  # no agent replied: an answer is needed
    assert "write the answer" in capsys.readouterr().err
    out_file = tmp_path / "draft.yaml"
    assert main(["kb", "draft", topic_id, "--answer", "可以，下单备注礼品包装。", "--category",
                 "presale", "--id", "gift-wrap", "--out", str(out_file)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("draft d") and "+ gift-wrap" in out[0]
    assert "gift-wrap" in out_file.read_text(encoding="utf-8")
    draft_id = out[0].split()[1].rstrip(":")
    assert main(["kb", "publish-draft", draft_id, "--author", "mgr"]) == 0
    assert capsys.readouterr().out.startswith("published ")
    assert main(["kb", "topics"]) == 0
    assert capsys.readouterr().out.strip() == "no open topics"  # resolved by the publish
