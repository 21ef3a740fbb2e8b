"""Load knowledge bases from YAML, CSV or XLSX files, validating everything before anything is used.

All three formats carry the same columns: ``id, question, variants, answer, category, campaign,
valid_from, valid_until``. ``variants`` is one cell with alternatives separated by ``|`` (YAML
may also give a list). Dates are ISO 8601 *with* an offset (``2025-11-11T00:00:00+08:00``): a
promotion window without a zone is ambiguous, so it is refused. YAML files have a top-level
``entries:`` list and may add ``tests:``, a list of ``{text, expected, at}``.

Every problem of a file is collected (with the file, the row or entry and the field) and raised
together as :class:`~knowledge.errors.ValidationFailed`; nothing of an invalid file is returned.
What is harmless and fixed on the way — a variant repeating another up to case, width or spacing,
as real exports have — is a *note*: the duplicate is dropped, the note logged and, on request,
handed back (``notes=``).
"""

from __future__ import annotations

import csv
import io
import logging
import re
import unicodedata
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from enum import StrEnum
from pathlib import Path
from typing import Any

import openpyxl
import yaml
from pydantic import ValidationError

from knowledge.errors import Problem, ValidationFailed
from knowledge.models import Category, Entry, KnowledgeBase, TestQuestion

FIELDS = (
    "id", "question", "variants", "answer", "category", "campaign", "valid_from", "valid_until",
)
REQUIRED_FIELDS = ("id", "question", "answer", "category")
TEST_FIELDS = ("text", "expected", "at")
VARIANT_SEPARATOR = "|"
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_ID_MAX = 128

logger = logging.getLogger(__name__)


class KbFormat(StrEnum):
    """File formats a knowledge base can be written in."""

    YAML = "yaml"  # entries + optional tests; the format `dump_yaml` writes
    CSV = "csv"  # UTF-8 (a BOM from Excel is fine), header row first
    XLSX = "xlsx"  # first sheet (or the one named "entries"), header row first


def format_of(filename: str) -> KbFormat | None:
    """The format a file name implies by its extension, or ``None`` when unsupported."""
    suffix = Path(filename).suffix.lower().lstrip(".")
    return {"yaml": KbFormat.YAML, "yml": KbFormat.YAML, "csv": KbFormat.CSV,
            "xlsx": KbFormat.XLSX}.get(suffix)


def load_kb(path: str | Path, *, notes: list[Problem] | None = None) -> KnowledgeBase:
    """Read and validate a knowledge-base file; the format comes from the extension.

    ``notes`` receives what was fixed on the way (see the module doc).

    Raises:
        ValidationFailed: the file is missing, unreadable or has any problem (all are listed).
    """
    path = Path(path)
    try:
        content = path.read_bytes()
    except OSError as exc:
        problem = Problem(str(path), "file", None, f"cannot read: {exc.strerror}")
        raise ValidationFailed([problem]) from exc
    return load_kb_bytes(content, str(path), notes=notes)


def load_kb_bytes(content: bytes, filename: str, *,
                  notes: list[Problem] | None = None) -> KnowledgeBase:
    """Validate an uploaded knowledge base; ``filename`` names it in problems and picks the format.

    ``notes`` receives what was fixed on the way (see the module doc).

    Raises:
        ValidationFailed: the content has any problem (all are listed).
    """
    fmt = format_of(filename)
    if fmt is None:
        raise ValidationFailed([Problem(filename, "file", None,
                                        "unsupported file type; use .yaml, .yml, .csv or .xlsx")])
    reader = {KbFormat.YAML: _read_yaml, KbFormat.CSV: _read_csv, KbFormat.XLSX: _read_xlsx}[fmt]
    source = reader(content, filename)
    validator = _Validator(filename)
    kb = validator.validate(source)
    for note in validator.notes:
        logger.warning("%s", note)
    if notes is not None:
        notes.extend(validator.notes)
    return kb


def parse_datetime(value: str | datetime, *, default_tz: tzinfo | None = None) -> datetime:
    """Parse an ISO 8601 time; a time without offset gets ``default_tz`` or is refused.

    Raises:
        ValueError: not ISO 8601, or no offset and no ``default_tz``.
    """
    if isinstance(value, datetime):
        parsed = value
    else:
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an ISO 8601 time such as "
                             "2025-11-11T00:00:00+08:00") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        if default_tz is None:
            raise ValueError(f"{value!s} has no UTC offset; "
                             "write it like 2025-11-11T00:00:00+08:00")
        parsed = parsed.replace(tzinfo=default_tz)
    return parsed


# --- reading the formats into raw records -----------------------------------------------------


@dataclass
class _Record:
    location: str
    values: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)  # found while reading this record


@dataclass
class _Source:
    entries: list[_Record] = field(default_factory=list)
    tests: list[_Record] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    absent: set[str] = field(default_factory=set)  # columns missing from a table header
    yaml_locations: bool = False  # YAML names entries by index + id


class _StringLoader(yaml.SafeLoader):
    """A YAML loader that keeps every scalar a string except ``null``.

    ``id: 001`` stays ``"001"``, dates stay text (so a naive date is caught, not guessed), and
    ``yes``/``no`` answers are not turned into booleans.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_StringLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag == "tag:yaml.org,2002:null"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _read_yaml(content: bytes, filename: str) -> _Source:
    source = _Source(yaml_locations=True)
    try:
        data = yaml.load(content.decode("utf-8-sig"), Loader=_StringLoader)
    except UnicodeDecodeError:
        source.problems.append(Problem(filename, "file", None, "not UTF-8 text"))
        return source
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "file"
        detail = getattr(exc, "problem", None) or str(exc)
        source.problems.append(Problem(filename, where, None, f"invalid YAML: {detail}"))
        return source
    if not isinstance(data, dict) or "entries" not in data:
        source.problems.append(Problem(filename, "file", "entries",
                                       "the top level must be a mapping with an `entries:` list"))
        return source
    for key in data:
        if key not in ("entries", "tests"):
            source.problems.append(Problem(filename, "file", str(key),
                                           "unknown top-level key; expected entries and tests"))
    for name, target in (("entries", source.entries), ("tests", source.tests)):
        items = data.get(name) or []
        if not isinstance(items, list):
            source.problems.append(Problem(filename, "file", name, "must be a list"))
            continue
        for index, item in enumerate(items):
            location = f"{name}[{index}]"
            if not isinstance(item, dict):
                source.problems.append(Problem(filename, location, None, "must be a mapping"))
                continue
            target.append(_Record(location, {str(k): v for k, v in item.items()}))
    return source


def _read_csv(content: bytes, filename: str) -> _Source:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return _Source(problems=[Problem(filename, "file", None,
                                         "not UTF-8 text; save it as \"CSV UTF-8\"")])
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        return _Source(problems=[Problem(filename, "file", None, f"invalid CSV: {exc}")])
    return _table_source(rows, filename)


def _read_xlsx(content: bytes, filename: str) -> _Source:
    try:
        book = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        problem = Problem(filename, "file", None, f"not a readable XLSX file: {exc}")
        return _Source(problems=[problem])
    try:
        sheet = book["entries"] if "entries" in book.sheetnames else book.worksheets[0]
        rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    finally:
        book.close()
    return _table_source(rows, filename)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value
    return str(value).strip()


def _table_source(rows: Sequence[Sequence[Any]], filename: str) -> _Source:
    source = _Source()
    if not rows or not any(_cell(c) for c in rows[0]):
        source.problems.append(Problem(filename, "row 1", None,
                                       f"missing header row; expected {', '.join(FIELDS)}"))
        return source
    header = [str(_cell(c)).lower() for c in rows[0]]
    columns: dict[int, str] = {}
    for index, name in enumerate(header):
        if not name:
            continue
        if name not in FIELDS:
            source.problems.append(Problem(filename, "row 1", name,
                                           f"unknown column; expected {', '.join(FIELDS)}"))
        elif name in columns.values():
            source.problems.append(Problem(filename, "row 1", name, "column appears twice"))
        else:
            columns[index] = name
    for name in REQUIRED_FIELDS:
        if name not in columns.values():
            source.problems.append(Problem(filename, "row 1", name, "missing required column"))
            source.absent.add(name)
    for number, row in enumerate(rows[1:], start=2):
        cells = [_cell(c) for c in row]
        if not any(cells):
            continue
        values = {name: cells[i] if i < len(cells) else "" for i, name in columns.items()}
        record = _Record(f"row {number}", values)
        for i, cell in enumerate(cells):
            if cell != "" and (i >= len(header) or not header[i]):
                record.problems.append(Problem(filename, record.location, f"column {i + 1}",
                                               "value in a column without a header"))
        source.entries.append(record)
    return source


# --- validation -------------------------------------------------------------------------------


def _text_key(text: str) -> str:
    """Comparison key for question texts: width, case and spaces do not make a new variant."""
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())


class _Validator:
    """Turns raw records into entries, collecting every problem on the way."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.problems: list[Problem] = []
        self.notes: list[Problem] = []  # fixed on the way, not refused
        self.id_locations: dict[str, str] = {}  # every id seen, valid entry or not
        self.entries_by_id: dict[str, Entry] = {}
        self.evergreen_texts: dict[str, str] = {}  # text key -> id of the always-active entry

    def problem(self, location: str, field_name: str | None, message: str) -> None:
        self.problems.append(Problem(self.filename, location, field_name, message))

    def validate(self, source: _Source) -> KnowledgeBase:
        self.problems.extend(source.problems)
        entries: list[Entry] = []
        for record in source.entries:
            raw_id = record.values.get("id")
            if source.yaml_locations and isinstance(raw_id, str):
                record.location += f" (id={raw_id.strip()})"
            if isinstance(raw_id, str) and raw_id.strip():
                self._check_unique_id(record.location, raw_id.strip())
            entry = self._entry(record, source.absent)
            if entry is not None:
                self._check_evergreen_clash(record.location, entry)
                entries.append(entry)
        tests = [t for t in (self._test(r) for r in source.tests) if t is not None]
        if not source.entries and not source.problems:
            self.problem("file", None, "no entries")
        if self.problems:
            raise ValidationFailed(self.problems)
        return KnowledgeBase(entries=tuple(entries), tests=tuple(tests))

    # -- entries --

    def _entry(self, record: _Record, absent: set[str]) -> Entry | None:
        before = len(self.problems)
        self.problems.extend(record.problems)
        values, where = record.values, record.location
        for name in values:
            if name not in FIELDS:
                self.problem(where, name, f"unknown field; expected {', '.join(FIELDS)}")
        for name in REQUIRED_FIELDS:
            if name not in absent and values.get(name) is None:
                self.problem(where, name, "missing required field")
        entry_id = self._text(where, "id", values.get("id"))
        if entry_id is not None and not (_ID_PATTERN.match(entry_id) and len(entry_id) <= _ID_MAX):
            self.problem(where, "id", f"{entry_id!r} is not a valid id: use letters, digits, . _ - "
                         f"(starting with a letter or digit, at most {_ID_MAX} characters)")
        question = self._text(where, "question", values.get("question"))
        answer = self._text(where, "answer", values.get("answer"))
        category = self._category(where, values.get("category"))
        variants = self._variants(where, question, values.get("variants"))
        campaign = self._text(where, "campaign", values.get("campaign"), required=False)
        valid_from = self._time(where, "valid_from", values.get("valid_from"))
        valid_until = self._time(where, "valid_until", values.get("valid_until"))
        if valid_from and valid_until and valid_until < valid_from:
            self.problem(where, "valid_until", f"{valid_until.isoformat()} is before valid_from "
                         f"{valid_from.isoformat()}")
        if len(self.problems) > before or absent & set(REQUIRED_FIELDS):
            return None
        try:
            return Entry(id=entry_id or "", question=question or "", variants=variants,
                         answer=answer or "", category=category or Category.PRESALE,
                         campaign=campaign, valid_from=valid_from, valid_until=valid_until)
        except ValidationError as exc:  # a rule of the model this loader does not check itself
            for error in exc.errors():
                self.problem(where, ".".join(str(p) for p in error["loc"]) or None, error["msg"])
            return None

    def _text(self, where: str, name: str, value: Any, *, required: bool = True) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            self.problem(where, name, "must be text")
            return None
        text = value.strip()
        if not text:
            if required:
                self.problem(where, name, "must not be empty")
            return None
        return text

    def _category(self, where: str, value: Any) -> Category | None:
        text = self._text(where, "category", value)
        if text is None:
            return None
        try:
            return Category(text.lower())
        except ValueError:
            allowed = ", ".join(c.value for c in Category)
            self.problem(where, "category", f"unknown category {text!r}; use one of {allowed}")
            return None

    def _variants(self, where: str, question: str | None, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            items: list[Any] = value.split(VARIANT_SEPARATOR)
        elif isinstance(value, list):
            items = value
        else:
            self.problem(where, "variants",
                         f"must be text separated by {VARIANT_SEPARATOR!r} or a list")
            return ()
        seen: dict[str, str] = {_text_key(question): "the question"} if question else {}
        variants: list[str] = []
        for item in items:
            if not isinstance(item, str):
                self.problem(where, "variants", f"variant {item!r} must be text")
                continue
            text = item.strip()
            if not text:
                continue
            key = _text_key(text)
            if key in seen:
                self.notes.append(Problem(self.filename, where, "variants",
                                          f"variant {text!r} repeats {seen[key]}; dropped"))
                continue
            seen[key] = f"variant {text!r}"
            variants.append(text)
        return tuple(variants)

    def _time(self, where: str, name: str, value: Any) -> datetime | None:
        if value is None or value == "":
            return None
        if not isinstance(value, str | datetime):
            self.problem(where, name, "must be an ISO 8601 time such as 2025-11-11T00:00:00+08:00")
            return None
        try:
            return parse_datetime(value)
        except ValueError as exc:
            self.problem(where, name, str(exc))
            return None

    # -- across entries --

    def _check_unique_id(self, where: str, entry_id: str) -> None:
        if entry_id in self.id_locations:
            self.problem(where, "id",
                         f"duplicate id {entry_id!r} (first used at {self.id_locations[entry_id]})")
        else:
            self.id_locations[entry_id] = where

    def _check_evergreen_clash(self, where: str, entry: Entry) -> None:
        """Two always-active entries with the same question text can never be told apart."""
        if entry.campaign or entry.valid_from or entry.valid_until:
            self.entries_by_id.setdefault(entry.id, entry)
            return
        for text in entry.texts:
            key = _text_key(text)
            owner = self.evergreen_texts.setdefault(key, entry.id)
            if owner != entry.id:
                self.problem(where, "question" if text == entry.question else "variants",
                             f"{text!r} is also a question of entry {owner!r}; both are "
                             "always active, so one of them could never be chosen")
        self.entries_by_id.setdefault(entry.id, entry)

    # -- tests --

    def _test(self, record: _Record) -> TestQuestion | None:
        before = len(self.problems)
        values, where = record.values, record.location
        for name in values:
            if name not in TEST_FIELDS:
                self.problem(where, name, f"unknown field; expected {', '.join(TEST_FIELDS)}")
        if "text" not in values:
            self.problem(where, "text", "missing required field")
        text = self._text(where, "text", values.get("text"))
        if "expected" not in values:
            self.problem(where, "expected", "missing; give an entry id, or null when the bot "
                         "must hand off")
        expected = self._text(where, "expected", values.get("expected"), required=False)
        at = self._time(where, "at", values.get("at"))
        entry = self.entries_by_id.get(expected) if expected else None
        if expected and expected not in self.id_locations:
            self.problem(where, "expected", f"no entry has id {expected!r}")
        elif entry is not None and at is not None and not entry.active_at(at):
            self.problem(where, "at", f"entry {expected!r} is not active at {at.isoformat()}")
        if len(self.problems) > before or text is None:
            return None
        return TestQuestion(text=text, expected=expected, at=at)


# --- writing ----------------------------------------------------------------------------------


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line answers as readable ``|`` blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _represent_str)


def _entry_record(entry: Entry) -> dict[str, Any]:
    record: dict[str, Any] = {"id": entry.id, "question": entry.question}
    if entry.variants:
        record["variants"] = list(entry.variants)
    record["answer"] = entry.answer
    record["category"] = entry.category.value
    if entry.campaign:
        record["campaign"] = entry.campaign
    for name in ("valid_from", "valid_until"):
        value = getattr(entry, name)
        if value is not None:
            record[name] = value.isoformat()
    return record


def dump_yaml(kb: KnowledgeBase) -> str:
    """The knowledge base as YAML that :func:`load_kb_bytes` reads back to an equal value."""
    data: dict[str, Any] = {"entries": [_entry_record(e) for e in kb.entries]}
    if kb.tests:
        data["tests"] = [{"text": t.text, "expected": t.expected,
                          **({"at": t.at.isoformat()} if t.at else {})} for t in kb.tests]
    return yaml.dump(data, Dumper=_BlockDumper, allow_unicode=True, sort_keys=False, width=100)


_TEMPLATE_ZONE = timezone(timedelta(hours=8))


def template_example(now: datetime | None = None) -> Entry:
    """The template's example: a presale campaign that starts next month, so it is upcoming."""
    today = (now or datetime.now(_TEMPLATE_ZONE)).astimezone(_TEMPLATE_ZONE)
    first = (today.replace(day=1) + timedelta(days=32)).replace(
        day=1, hour=20, minute=0, second=0, microsecond=0)
    return Entry(
        id=f"sale-{first:%Y%m}-deposit",
        question="活动预售定金可以退吗？",
        variants=("定金能退吗", "付了定金不想要了", "can I get my deposit back"),
        answer="活动预售定金在付尾款前不退；若因商家原因无法发货，定金全额退回。",
        category=Category.PRESALE,
        campaign=f"sale-{first:%Y%m}",
        valid_from=first,
        valid_until=(first + timedelta(days=10)).replace(hour=23, minute=59, second=59),
    )


def _table_rows(example: Entry) -> list[list[str]]:
    record = _entry_record(example)
    record["variants"] = VARIANT_SEPARATOR.join(record.get("variants", []))
    return [list(FIELDS), [str(record.get(name, "")) for name in FIELDS]]


def template_bytes(fmt: KbFormat | str, *, now: datetime | None = None) -> bytes:
    """A starter file in ``fmt``: the header (or keys) and one example entry that validates.

    The example campaign is dated from ``now`` (default: today) so it is always upcoming.
    """
    fmt = KbFormat(fmt)
    entry = template_example(now)
    if fmt is KbFormat.YAML:
        assert entry.valid_from is not None
        example = KnowledgeBase(entries=(entry,), tests=(
            TestQuestion(text="定金还能退吗", expected=entry.id,
                         at=entry.valid_from + timedelta(days=1)),
            TestQuestion(text="你们老板是谁", expected=None),
        ))
        return dump_yaml(example).encode("utf-8")
    if fmt is KbFormat.CSV:
        buffer = io.StringIO(newline="")
        csv.writer(buffer).writerows(_table_rows(entry))
        return buffer.getvalue().encode("utf-8-sig")  # the BOM makes Excel read UTF-8
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "entries"
    for row in _table_rows(entry):
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def write_template(fmt: KbFormat | str, path: str | Path) -> Path:
    """Write :func:`template_bytes` to ``path`` and return it."""
    path = Path(path)
    path.write_bytes(template_bytes(fmt))
    return path
