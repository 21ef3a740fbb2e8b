from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import knowledge.service
from kefu.cli import main
from knowledge.loader import dump_yaml
from knowledge.models import Category, Entry, KnowledgeBase
from knowledge.settings import get_settings
from tests.knowledge.conftest import FAKE_TWIN_SIMILARITY, shop_kb
from tests.knowledge.fakes import HashingEncoder


@pytest.fixture
def kb_file(tmp_path: Path) -> Path:
    path = tmp_path / "shop.yaml"
    path.write_text(dump_yaml(shop_kb()), encoding="utf-8")
    return path


@pytest.fixture
def fake_encoders(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    encoders = (HashingEncoder(), None)
    monkeypatch.setattr(knowledge.service, "shared_encoders", lambda settings=None: encoders)
    monkeypatch.setenv("KEFU_TWIN_SIMILARITY", str(FAKE_TWIN_SIMILARITY))  # the fake's scale
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def redis_env(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("KEFU_REDIS_URL", redis_url)
    get_settings.cache_clear()
    yield redis_url
    get_settings.cache_clear()


def test_validate_ok(kb_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kb", "validate", str(kb_file)]) == 0
    assert capsys.readouterr().out.strip() == f"{kb_file}: ok, 6 entries (1 campaign), 0 tests"


def test_validate_prints_one_line_per_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,question,answer,category\na,q,,presale\na,q2,x,nope\n", encoding="utf-8")
    assert main(["kb", "validate", str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{bad}: row 2: answer: must not be empty",
        f"{bad}: row 3: id: duplicate id 'a' (first used at row 2)",
        f"{bad}: row 3: category: unknown category 'nope'; use one of presale, aftersale, "
        "logistics, payment, account, product",
        "3 problem(s); nothing was changed",
    ]


def test_console_script_is_wired(kb_file: Path, repo_root: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "kefu.cli", "kb", "validate", str(kb_file)],
                            capture_output=True, text=True, cwd=repo_root, check=False)
    assert result.returncode == 0, result.stderr
    assert "ok, 6 entries" in result.stdout


def test_template_writes_a_valid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "starter.csv"
    assert main(["kb", "template", str(target)]) == 0
    assert main(["kb", "validate", str(target)]) == 0
    assert main(["kb", "template", str(tmp_path / "x.txt")]) == 2


@pytest.mark.redis
def test_publish_versions_rollback(
    kb_file: Path, tmp_path: Path, redis_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kb", "versions"]) == 0
    assert capsys.readouterr().out.strip() == "no versions published yet"

    assert main(["kb", "publish", str(kb_file), "--author", "alice"]) == 0
    first = capsys.readouterr().out.split()[1]
    bigger = tmp_path / "bigger.yaml"
    bigger.write_text(dump_yaml(KnowledgeBase(entries=(*shop_kb().entries, Entry(
        id="gift", question="能礼品包装吗", answer="能", category=Category.PRESALE)))),
        encoding="utf-8")
    assert main(["kb", "publish", str(bigger), "--author", "bob", "--note", "gift wrap"]) == 0
    second = capsys.readouterr().out.split()[1]

    assert main(["kb", "versions"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith(f" * {second}") and "bob" in lines[1] and "gift wrap" in lines[1]
    assert lines[2].startswith(f"   {first}") and "alice" in lines[2]

    assert main(["kb", "rollback", first, "--author", "carol"]) == 0
    assert "is live again" in capsys.readouterr().out
    assert main(["kb", "versions"]) == 0
    assert capsys.readouterr().out.splitlines()[2].startswith(f" * {first}")

    assert main(["kb", "rollback", "nope"]) == 2
    assert capsys.readouterr().err.strip() == "error: no knowledge-base version 'nope'"


@pytest.mark.redis
def test_invalid_file_is_not_published(
    tmp_path: Path, redis_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("entries:\n  - {id: a, question: q, answer: a, category: x}\n",
                   encoding="utf-8")
    assert main(["kb", "publish", str(bad)]) == 2
    assert "unknown category" in capsys.readouterr().err
    assert main(["kb", "versions"]) == 0
    assert "no versions" in capsys.readouterr().out


@pytest.mark.redis
def test_search_live_version_and_file(
    kb_file: Path, redis_env: str, fake_encoders: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kb", "search", "多久发货"]) == 2
    assert "no knowledge-base version is live" in capsys.readouterr().err

    assert main(["kb", "publish", str(kb_file)]) == 0
    version = capsys.readouterr().out.split()[1]
    assert main(["kb", "search", "多久发货", "--at", "2025-11-05T12:00", "--k", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"live version {version}, as of 2025-11-05T12:00:00+08:00"
    assert out[2].split()[:2] == ["1", "ship-time-d11"]
    assert len([line for line in out if line[:2].strip().isdigit()]) == 3
    assert out[-1].startswith("decision: answer ship-time-d11 (")

    assert main(["kb", "search", "多久发货", "--kb", str(kb_file),
                 "--at", "2025-12-01T12:00:00+08:00"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(str(kb_file)) and out[-1].startswith("decision: answer ship-time (")


def test_bad_time_is_an_argument_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["kb", "search", "x", "--at", "tomorrow"])
    assert info.value.code == 2
    assert "not an ISO 8601 time" in capsys.readouterr().err


def test_eval_writes_json(
    kb_file: Path, tmp_path: Path, fake_encoders: None, capsys: pytest.CaptureFixture[str]
) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text("\n".join(json.dumps(q, ensure_ascii=False) for q in [
        {"text": "下单后多久发货", "expected": "ship-time"},
        {"text": "双11期间多久发货", "expected": "ship-time-d11", "at": "2025-11-05T12:00:00+08:00"},
        {"text": "今天天气怎么样", "expected": None},
    ]), encoding="utf-8")
    out_json = tmp_path / "report.json"
    assert main(["eval", "--kb", str(kb_file), "--questions", str(questions),
                 "--json", str(out_json), "--now", "2025-06-01T12:00:00+08:00"]) == 0
    assert "in_scope_top1" in capsys.readouterr().out
    report = json.loads(out_json.read_text(encoding="utf-8"))
    assert (report["n_in_scope"], report["n_oos"]) == (2, 1)
    assert report["in_scope_top1"] == 1.0 and report["oos_recall"] == 1.0
    assert report["predictions"][0]["at"] == "2025-06-01T12:00:00+08:00"
    assert {"p50_ms", "p95_ms", "answer_precision", "accuracy", "clarify_rate",
            "clarify_hit"} <= set(report)


def test_eval_names_bad_lines(
    kb_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"text": "x", "expected": null}\n{"text": "y", "expected": "zzz"}\n',
                         encoding="utf-8")
    assert main(["eval", "--kb", str(kb_file), "--questions", str(questions)]) == 2
    err = capsys.readouterr().err
    assert f"{questions}: line 2: expected: no entry 'zzz' in the knowledge base" in err
