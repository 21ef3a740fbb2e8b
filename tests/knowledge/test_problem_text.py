"""Every problem the loader reports on an upload has a Chinese rendering for the admin page."""

from __future__ import annotations

import re

import pytest

from knowledge.errors import Problem, ValidationFailed
from knowledge.loader import load_kb_bytes
from knowledge.problem_text import location_in_chinese, message_in_chinese

HEADER = "id,question,variants,answer,category,campaign,valid_from,valid_until\n"

BAD_FILES: list[tuple[str, bytes]] = [
    ("a.txt", b"x"),
    ("b.csv", b"\xff\xfe\x00bad"),
    ("c.csv", b""),
    ("d.csv", b"id,id,question,category,colour\n1,2,q,presale,x\n"),
    ("e.csv", (HEADER + "ok,q,,a,presale,,,\nok2,q2,,,presale,,,\n,,,,,,,\n"
               "bad id!,问,,答,shoes,,2025-11-11,2025-13-01T00:00:00+08:00,extra\n"
               "dup,问题一,问题一|问题一 ,答,presale,,2025-12-01T00:00:00+08:00,2025-11-01T00:00:00+08:00\n"
               "dup,问题二,,答,presale,,,\n"
               "twin,问题二,,答,presale,,,\n").encode()),
    ("f.yaml", b"entries: [\n"),
    ("g.yaml", b"foo: 1\n"),
    ("h.yaml", b"entries: 3\ntests: [1]\nextra: x\n"),
    ("i.yaml", ("entries:\n  - id: a\n    question: [1]\n    answer: 答\n    category: presale\n"
                "    variants: 7\n    colour: red\n    valid_from: 12\n"
                "  - id: b\n    question: 问\n    answer: 答\n    category: presale\n"
                "    variants: [[1], 甲, 甲]\n    valid_until: {x: 1}\n"
                "  - id: d\n    question: 问d\n    category: presale\n    variants: {x: 1}\n"
                "  - id: c\n    question: 问c\n    answer: 答\n    category: presale\n"
                "    valid_from: '2025-11-01T00:00:00+08:00'\n"
                "    valid_until: '2025-11-11T00:00:00+08:00'\n"
                "tests:\n  - {text: q}\n  - {text: q, expected: nope}\n"
                "  - {text: q, expected: c, at: '2026-01-01T00:00:00+08:00'}\n"
                "  - {text: q, expected: null, colour: x}\n").encode()),
    ("j.yaml", b"entries: []\n"),
    ("k.xlsx", b"not a zip"),
]


def problems() -> list[Problem]:
    found: list[Problem] = []
    for name, content in BAD_FILES:
        with pytest.raises(ValidationFailed) as failed:
            load_kb_bytes(content, name)
        found += failed.value.problems
    return found


def test_every_loader_problem_reads_in_chinese() -> None:
    seen = problems()
    assert len({p.message for p in seen}) >= 30  # the files above reach most messages
    untranslated = [p.message for p in seen if not re.search(r"[\u4e00-\u9fff]",
                                                              message_in_chinese(p.message))]
    assert untranslated == []
    for p in seen:
        assert re.search(r"[\u4e00-\u9fff]", location_in_chinese(p.location)), p.location


def test_every_loader_note_reads_in_chinese() -> None:
    """A repeated variant is dropped with a note, not refused; the note is rendered too."""
    content = ("entries:\n  - id: a\n    question: 怎么退货\n    answer: 答\n"
               "    category: aftersale\n    variants: [怎么 退货, ＡＢＣ退货, abc退货]\n").encode()
    notes: list[Problem] = []
    load_kb_bytes(content, "notes.yaml", notes=notes)
    assert [message_in_chinese(n.message) for n in notes] == [
        "问法 '怎么 退货' 与标准问题重复，已去掉",
        "问法 'abc退货' 与问法 'ＡＢＣ退货' 重复，已去掉",
    ]


def test_values_are_kept_and_counting_starts_at_one() -> None:
    assert message_in_chinese("duplicate id 'dup' (first used at row 5)") == \
        "ID 'dup' 重复（首次出现在 row 5）"
    assert message_in_chinese("unknown category 'shoes'; use one of presale, aftersale") == \
        "未知分类 'shoes'，可选：presale, aftersale"
    assert location_in_chinese("entries[0] (id=a)") == "第 1 个条目 (id=a)"
    assert location_in_chinese("row 3") == "第 3 行"
    assert message_in_chinese("something new the loader says") == "something new the loader says"


def test_the_api_body_carries_both_languages() -> None:
    body = ValidationFailed([Problem("f.csv", "row 2", "category", "must not be empty")]).fields()
    [problem] = body["problems"]
    assert (problem["message"], problem["message_zh"]) == ("must not be empty", "不能为空")
    assert (problem["location_zh"], problem["field_zh"]) == ("第 2 行", "category")
