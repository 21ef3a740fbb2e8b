from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import openpyxl
import pytest

from knowledge.errors import Problem, ValidationFailed
from knowledge.loader import (
    FIELDS,
    KbFormat,
    dump_yaml,
    load_kb,
    load_kb_bytes,
    parse_datetime,
    template_bytes,
    template_example,
    write_template,
)
from knowledge.models import Category, Entry, KnowledgeBase, TestQuestion

CST = timezone(timedelta(hours=8))

GOOD_YAML = """\
entries:
  - id: "001"
    question: 支持七天无理由退货吗？
    variants: [可以退货吗, 7天无理由, can I return it]
    answer: |
      支持。签收后 7 天内，商品完好即可申请。
      运费由买家承担。
    category: aftersale
  - id: double11-deposit
    question: 双11定金可以退吗
    variants: 定金能退吗 | 付了定金不想要了
    answer: "no"
    category: Presale
    campaign: double11
    valid_from: 2025-10-20T20:00:00+08:00
    valid_until: "2025-11-11T23:59:59Z"
tests:
  - text: 能退货吗
    expected: "001"
  - text: 定金退不退
    expected: double11-deposit
    at: 2025-11-01T12:00:00+08:00
  - text: 你们老板是谁
    expected: null
"""


def problems_of(content: str | bytes, filename: str) -> list[Problem]:
    data = content.encode("utf-8") if isinstance(content, str) else content
    with pytest.raises(ValidationFailed) as info:
        load_kb_bytes(data, filename)
    return info.value.problems


def csv_bytes(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode("utf-8")


def xlsx_bytes(rows: list[list[object]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def sample_kb() -> KnowledgeBase:
    return KnowledgeBase(
        entries=(
            Entry(id="ship-time", question="几天发货",
                  variants=("什么时候发货", "when do you ship"),
                  answer="付款后 48 小时内发货。\n节假日顺延。", category=Category.LOGISTICS),
            Entry(id="d11", question="双11 定金能退吗", answer="不退", category=Category.PRESALE,
                  campaign="double11", valid_from=datetime(2025, 10, 20, 20, tzinfo=CST),
                  valid_until=datetime(2025, 11, 11, 23, 59, 59, tzinfo=CST)),
        ),
        tests=(TestQuestion(text="多久发货", expected="ship-time"),
               TestQuestion(text="天气如何", expected=None,
                            at=datetime(2025, 11, 1, 12, tzinfo=CST))),
    )


# --- reading ------------------------------------------------------------------------------------


def test_yaml_reads_entries_variants_dates_and_tests() -> None:
    kb = load_kb_bytes(GOOD_YAML.encode(), "kb.yaml")
    first, second = kb.entries
    assert first.id == "001"  # stays text, not the YAML integer 1
    assert first.variants == ("可以退货吗", "7天无理由", "can I return it")
    assert first.answer.startswith("支持。") and "\n" in first.answer
    assert second.answer == "no"  # not the YAML boolean
    assert second.category is Category.PRESALE
    assert second.variants == ("定金能退吗", "付了定金不想要了")
    assert second.valid_from == datetime(2025, 10, 20, 20, tzinfo=CST)
    assert second.valid_until == datetime(2025, 11, 11, 23, 59, 59, tzinfo=UTC)
    assert [t.expected for t in kb.tests] == ["001", "double11-deposit", None]
    assert kb.tests[1].at == datetime(2025, 11, 1, 12, tzinfo=CST)


def test_csv_with_excel_bom_and_empty_optional_cells(tmp_path: Path) -> None:
    rows = [list(FIELDS),
            ["ship", "几天发货", "什么时候发货|| 多久发 ", "48小时内", "logistics", "", "", ""]]
    path = tmp_path / "kb.csv"
    path.write_bytes(b"\xef\xbb\xbf" + csv_bytes(rows))
    kb = load_kb(path)
    (entry,) = kb.entries
    assert entry.variants == ("什么时候发货", "多久发")
    assert entry.campaign is None and entry.valid_from is None and entry.valid_until is None


def test_xlsx_numeric_ids_and_sheet_named_entries() -> None:
    book = openpyxl.Workbook()
    book.active.title = "notes"
    book.active.append(["this sheet is ignored"])
    sheet = book.create_sheet("entries")
    sheet.append(["ID", "Question", "Answer", "Category"])
    sheet.append([1001, "几天发货", "48小时内", "logistics"])
    out = io.BytesIO()
    book.save(out)
    kb = load_kb_bytes(out.getvalue(), "kb.xlsx")
    assert kb.entries[0].id == "1001"


@pytest.mark.parametrize("fmt", list(KbFormat))
def test_round_trip_through_every_format(fmt: KbFormat, tmp_path: Path) -> None:
    kb = sample_kb()
    yaml_kb = load_kb_bytes(dump_yaml(kb).encode(), "kb.yaml")
    assert yaml_kb == kb
    if fmt is KbFormat.YAML:
        return
    rows: list[list[str]] = [list(FIELDS)]
    for entry in kb.entries:
        rows.append([entry.id, entry.question, "|".join(entry.variants), entry.answer,
                     entry.category.value, entry.campaign or "",
                     entry.valid_from.isoformat() if entry.valid_from else "",
                     entry.valid_until.isoformat() if entry.valid_until else ""])
    data = csv_bytes(rows) if fmt is KbFormat.CSV else xlsx_bytes(list(rows))
    path = tmp_path / f"kb.{fmt.value}"
    path.write_bytes(data)
    assert load_kb(path).entries == kb.entries


@pytest.mark.parametrize("fmt", list(KbFormat))
def test_templates_validate_and_show_the_date_format(fmt: KbFormat, tmp_path: Path) -> None:
    path = write_template(fmt, tmp_path / f"template.{fmt.value}")
    kb = load_kb(path)
    assert len(kb.entries) == 1
    start = kb.entries[0].valid_from
    assert start is not None and start.utcoffset() is not None
    assert start > datetime.now(UTC)  # the example campaign is upcoming, whenever it is made
    if fmt is KbFormat.CSV:
        header = template_bytes(fmt).decode("utf-8-sig").splitlines()[0]
        assert header.split(",") == list(FIELDS)


# --- problems -----------------------------------------------------------------------------------


def test_yaml_problems_name_entry_index_id_and_field() -> None:
    content = """\
entries:
  - id: a
    question: 怎么退货
    variants: [退货, " 退货", 怎么退货]
    answer: "  "
    category: foo
    colour: red
  - id: a
    question: x
    answer: y
    category: presale
  - question: no id here
    category: presale
  - id: bad id!
    question: q
    answer: a
    category: presale
"""
    problems = problems_of(content, "kb.yaml")
    found = {(p.location, p.field, p.message.split(";")[0]) for p in problems}
    assert found == {
        ("entries[0] (id=a)", "colour", "unknown field"),
        ("entries[0] (id=a)", "answer", "must not be empty"),
        ("entries[0] (id=a)", "category", "unknown category 'foo'"),
        ("entries[1] (id=a)", "id", "duplicate id 'a' (first used at entries[0] (id=a))"),
        ("entries[2]", "id", "missing required field"),
        ("entries[2]", "answer", "missing required field"),
        ("entries[3] (id=bad id!)", "id", "'bad id!' is not a valid id: use letters, digits, . _ - "
         "(starting with a letter or digit, at most 128 characters)"),
    }


def test_dates_must_be_iso_with_offset_and_ordered() -> None:
    header = list(FIELDS)
    rows = [header,
            ["a", "q1", "", "a", "presale", "", "2025-11-01", ""],
            ["b", "q2", "", "a", "presale", "", "2025-11-01T00:00:00", ""],
            ["c", "q3", "", "a", "presale", "", "next tuesday", ""],
            ["d", "q4", "", "a", "presale", "", "2025-11-02T00:00:00+08:00",
             "2025-11-01T00:00:00+08:00"]]
    problems = problems_of(csv_bytes(rows), "kb.csv")
    assert [(p.location, p.field) for p in problems] == [
        ("row 2", "valid_from"), ("row 3", "valid_from"), ("row 4", "valid_from"),
        ("row 5", "valid_until"),
    ]
    assert "no UTC offset" in problems[0].message and "no UTC offset" in problems[1].message
    assert "not an ISO 8601 time" in problems[2].message
    assert "is before valid_from" in problems[3].message
    assert all(p.file == "kb.csv" for p in problems)


def test_csv_header_problems_and_row_numbers_count_the_header_and_blank_rows() -> None:
    rows = [["id", "question", "category", "colour"],
            ["a", "q", "presale", "red"],
            [],
            ["a", "", "Presale", ""],
            ["b", "q2", "presale", "", "stray"]]
    problems = problems_of(csv_bytes(rows), "faq.csv")
    assert [str(p) for p in problems] == [
        "faq.csv: row 1: colour: unknown column; expected id, question, variants, answer, "
        "category, campaign, valid_from, valid_until",
        "faq.csv: row 1: answer: missing required column",
        "faq.csv: row 4: id: duplicate id 'a' (first used at row 2)",
        "faq.csv: row 4: question: must not be empty",
        "faq.csv: row 5: column 5: value in a column without a header",
    ]


def test_xlsx_naive_excel_dates_are_refused() -> None:
    rows: list[list[object]] = [list(FIELDS),
                                ["a", "q", "", "a", "presale", "", datetime(2025, 11, 1), ""]]
    (problem,) = problems_of(xlsx_bytes(rows), "kb.xlsx")
    assert (problem.location, problem.field) == ("row 2", "valid_from")
    assert "no UTC offset" in problem.message


def test_evergreen_entries_may_not_share_a_question_but_campaign_entries_may() -> None:
    content = """\
entries:
  - {id: ship, question: 几天发货, answer: 两天, category: logistics}
  - {id: ship-d11, question: 几天发货, answer: 双11期间五天, category: logistics,
     campaign: double11, valid_from: "2025-11-01T00:00:00+08:00", valid_until: "2025-11-12T00:00:00+08:00"}
  - {id: ship2, question: 发货时间, variants: [几 天 发货], answer: 三天, category: logistics}
"""
    (problem,) = problems_of(content, "kb.yaml")
    assert (problem.location, problem.field) == ("entries[2] (id=ship2)", "variants")
    assert "entry 'ship'" in problem.message


def test_tests_section_problems() -> None:
    content = """\
entries:
  - id: d11
    question: 定金能退吗
    answer: 不退
    category: presale
    valid_from: "2025-11-01T00:00:00+08:00"
tests:
  - {text: 定金, expected: nope}
  - {text: 定金2}
  - {text: 定金3, expected: d11, at: "2025-10-01T00:00:00+08:00"}
  - {text: "", expected: null, why: x}
"""
    found = [(p.location, p.field) for p in problems_of(content, "kb.yaml")]
    assert found == [("tests[0]", "expected"), ("tests[1]", "expected"), ("tests[2]", "at"),
                     ("tests[3]", "why"), ("tests[3]", "text")]


@pytest.mark.parametrize(
    ("content", "filename", "expected"),
    [
        (b"entries: [a: b", "kb.yaml", "invalid YAML"),
        (b"- id: a\n", "kb.yaml", "top level must be a mapping"),
        (b"entries:\n  - {id: a, id: b}\n", "kb.yaml", "duplicate key 'id'"),
        (b"entries: []\n", "kb.yaml", "no entries"),
        (b"entries: []\nextra: 1\n", "kb.yaml", "unknown top-level key"),
        (b"", "kb.csv", "missing header row"),
        (b"\xff\xfe\x00", "kb.csv", "not UTF-8"),
        (b"not a zip", "kb.xlsx", "not a readable XLSX"),
        (b"id: a", "kb.json", "unsupported file type"),
    ],
)
def test_file_level_problems(content: bytes, filename: str, expected: str) -> None:
    problems = problems_of(content, filename)
    assert any(expected in p.message for p in problems), problems


def test_missing_file_is_a_validation_problem(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as info:
        load_kb(tmp_path / "nope.yaml")
    assert "cannot read" in str(info.value)


def test_parse_datetime_default_zone() -> None:
    assert parse_datetime("2025-11-11T08:00", default_tz=CST) == datetime(2025, 11, 11, tzinfo=UTC)
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_datetime("2025-11-11T08:00")


def test_variants_repeating_up_to_case_width_or_spaces_are_dropped_with_a_note(
    caplog: pytest.LogCaptureFixture,
) -> None:
    content = """entries:
  - id: a
    question: 怎么退货
    variants: [怎么 退货, 退货流程, 退货流程 , ＡＢＣ退货, abc退货, 退貨流程]
    answer: 订单页申请
    category: aftersale
""".encode()
    notes: list[Problem] = []
    with caplog.at_level("WARNING", logger="knowledge.loader"):
        kb = load_kb_bytes(content, "export.yaml", notes=notes)
    # spacing, case and width make no new variant; another script (退貨) does
    assert kb.entries[0].variants == ("退货流程", "ＡＢＣ退货", "退貨流程")
    assert [(n.location, n.field) for n in notes] == [("entries[0] (id=a)", "variants")] * 3
    assert "repeats the question; dropped" in notes[0].message
    assert len([r for r in caplog.records if "dropped" in r.getMessage()]) == 3


def test_the_template_campaign_is_dated_from_today() -> None:
    december = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    entry = template_example(december)
    assert entry.valid_from == datetime(2027, 1, 1, 20, 0, tzinfo=timezone(timedelta(hours=8)))
    assert entry.valid_until is not None and entry.valid_until > entry.valid_from
    assert entry.campaign == "sale-202701"
    assert b"sale-202701" in template_bytes("yaml", now=december)
