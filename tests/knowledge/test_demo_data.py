"""Structural checks of the demo store, its evaluation questions and the sample upload files.

No model: these facts must hold whatever the retrieval does. The evaluation questions are only
meaningful if every expected entry exists and is active at the question's time, if the questions
are not copies of the knowledge base's own texts, and if campaign topics are asked both inside
and outside their windows.
"""

from __future__ import annotations

import csv
import json
import re
import unicodedata
from collections import Counter
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

import opencc
import pytest
import yaml

from knowledge.loader import load_kb
from knowledge.models import Category, Entry, KnowledgeBase, TestQuestion

DATA = Path(__file__).resolve().parents[2] / "knowledge" / "data"
STORE_YAML = DATA / "demo_store.yaml"
STORE_CSV = DATA / "demo_store.csv"
QUESTIONS = DATA / "demo_questions.jsonl"
DOUBLE12 = DATA / "campaign_double12.yaml"

CSV_COLUMNS = [
    "id",
    "question",
    "variants",
    "answer",
    "category",
    "campaign",
    "valid_from",
    "valid_until",
]
CHINA = timedelta(hours=8)

# Evergreen entry -> campaign entries of the demo store that answer the same topic in their window.
OVERLAPS = {
    "price-protection": ("d11-price-protection",),
    "dispatch-time": ("d11-spot-shipping", "cny-shipping"),
    "presale-general": ("d11-presale-shipping", "d11-presale-return"),
    "store-coupons": ("d11-store-coupons", "cny-coupons"),
    "gifts": ("d11-gifts",),
    "return-7day": ("cny-returns",),
}

_CJK = re.compile(r"[\u3400-\u9fff]")
_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf]")


@cache
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    simplified: str = _t2s().convert(text)
    return simplified


def text_key(text: str) -> str:
    """Width, case, script (traditional/simplified), punctuation, symbols and spaces removed."""
    text = to_simplified(unicodedata.normalize("NFKC", text)).casefold()
    return "".join(c for c in text if unicodedata.category(c)[0] not in "PSZC")


def is_traditional(text: str) -> bool:
    return to_simplified(text) != text


@pytest.fixture(scope="module")
def store() -> KnowledgeBase:
    return KnowledgeBase.model_validate(yaml.safe_load(STORE_YAML.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def questions() -> list[TestQuestion]:
    lines = QUESTIONS.read_text(encoding="utf-8").splitlines()
    return [TestQuestion.model_validate(json.loads(line)) for line in lines]


@pytest.fixture(scope="module")
def double12() -> KnowledgeBase:
    return KnowledgeBase.model_validate(yaml.safe_load(DOUBLE12.read_text(encoding="utf-8")))


def windows_of(entry: Entry) -> tuple[datetime, datetime]:
    assert entry.valid_from is not None
    assert entry.valid_until is not None
    return entry.valid_from, entry.valid_until


# ------------------------------------------------------------------ the knowledge base


def test_store_has_enough_unique_entries_in_every_category(store: KnowledgeBase) -> None:
    ids = [e.id for e in store.entries]
    assert len(ids) >= 60
    assert len(set(ids)) == len(ids), [i for i, n in Counter(ids).items() if n > 1]
    assert {e.category for e in store.entries} == set(Category)


def test_every_entry_has_three_to_six_distinct_variants(store: KnowledgeBase) -> None:
    for entry in store.entries:
        assert 3 <= len(entry.variants) <= 6, entry.id
        keys = [text_key(t) for t in entry.texts]
        assert len(set(keys)) == len(keys), entry.id


def test_no_question_text_belongs_to_two_entries(store: KnowledgeBase) -> None:
    owners: dict[str, str] = {}
    for entry in store.entries:
        for text in entry.texts:
            owner = owners.setdefault(text_key(text), entry.id)
            assert owner == entry.id, f"{text!r} is in {owner} and {entry.id}"


def test_campaign_windows_are_aware_china_times(store: KnowledgeBase) -> None:
    campaigns = [e for e in store.entries if e.campaign]
    assert {e.campaign for e in campaigns} >= {"double11-2026", "spring-festival-2027"}
    for entry in store.entries:
        assert (entry.campaign is None) == (entry.valid_from is None) == (entry.valid_until is None)
    for entry in campaigns:
        start, end = windows_of(entry)
        assert start.utcoffset() == CHINA and end.utcoffset() == CHINA, entry.id
        assert start < end, entry.id


def test_double11_final_payment_window(store: KnowledgeBase) -> None:
    entry = store.entry("d11-final-payment")
    assert entry is not None
    start, end = windows_of(entry)
    assert not entry.active_at(datetime.fromisoformat("2026-10-20T19:59:59+08:00"))
    assert entry.active_at(datetime.fromisoformat("2026-11-10T20:00:00+08:00"))
    assert entry.active_at(datetime.fromisoformat("2026-11-11T23:59:59+08:00"))
    assert not entry.active_at(end + timedelta(seconds=1))
    assert start.isoformat() == "2026-10-20T20:00:00+08:00"
    assert "11 月 10 日 20:00" in entry.answer and "23:59:59" in entry.answer


def test_overlaps_pair_an_evergreen_entry_with_campaign_entries(store: KnowledgeBase) -> None:
    for evergreen_id, campaign_ids in OVERLAPS.items():
        evergreen = store.entry(evergreen_id)
        assert evergreen is not None and evergreen.campaign is None, evergreen_id
        for campaign_id in campaign_ids:
            campaign = store.entry(campaign_id)
            assert campaign is not None and campaign.campaign is not None, campaign_id
            assert campaign.category in (
                evergreen.category,
                Category.LOGISTICS,
                Category.AFTERSALE,
            ), campaign_id


def test_store_has_english_entries(store: KnowledgeBase) -> None:
    english = [e for e in store.entries if not _CJK.search(e.question)]
    assert 12 <= len(english) <= 15
    assert {e.category for e in english} == set(Category)


def test_the_app_loader_accepts_every_data_file(
    store: KnowledgeBase, double12: KnowledgeBase
) -> None:
    assert load_kb(STORE_YAML).entries == store.entries
    assert load_kb(DOUBLE12) == double12
    assert len(load_kb(STORE_CSV).entries) == 10


# ------------------------------------------------------------------ the evaluation questions


def test_questions_file_is_plain_utf8_jsonl() -> None:
    raw = QUESTIONS.read_text(encoding="utf-8")
    assert "\\u" not in raw  # written with ensure_ascii=False
    for line in raw.splitlines():
        assert set(json.loads(line)) <= {"text", "expected", "at"}, line


def test_enough_questions_and_enough_out_of_scope(questions: list[TestQuestion]) -> None:
    assert len(questions) >= 200
    assert sum(q.expected is None for q in questions) >= 50
    pairs = [(q.text, q.at) for q in questions]
    assert len(set(pairs)) == len(pairs)


def test_every_expected_entry_exists_and_every_entry_is_asked(
    store: KnowledgeBase, questions: list[TestQuestion]
) -> None:
    ids = {e.id for e in store.entries}
    expected = {q.expected for q in questions if q.expected is not None}
    assert expected <= ids, sorted(expected - ids)
    assert ids <= expected, sorted(ids - expected)


def test_questions_are_not_copies_of_entry_texts(
    store: KnowledgeBase, questions: list[TestQuestion]
) -> None:
    entry_texts = {text_key(t): e.id for e in store.entries for t in e.texts}
    copies = [
        (q.text, entry_texts[text_key(q.text)])
        for q in questions
        if text_key(q.text) in entry_texts
    ]
    assert copies == []


def test_questions_cover_every_category(
    store: KnowledgeBase, questions: list[TestQuestion]
) -> None:
    per_category = Counter(
        entry.category
        for q in questions
        if q.expected and (entry := store.entry(q.expected)) is not None
    )
    assert set(per_category) == set(Category)
    assert min(per_category.values()) >= 20, per_category


def test_questions_mix_languages_scripts_and_emoji(questions: list[TestQuestion]) -> None:
    english = [q for q in questions if not _CJK.search(q.text)]
    assert len(english) >= 40
    assert sum(q.expected is None for q in english) >= 10
    assert sum(is_traditional(q.text) for q in questions) >= 10
    assert sum(bool(_EMOJI.search(q.text)) for q in questions) >= 8
    mixed = [q for q in questions if _CJK.search(q.text) and re.search(r"[A-Za-z]{3,}", q.text)]
    assert len(mixed) >= 5


def test_cross_lingual_questions(store: KnowledgeBase, questions: list[TestQuestion]) -> None:
    def chinese_entry(q: TestQuestion) -> bool:
        entry = store.entry(q.expected) if q.expected else None
        return entry is not None and bool(_CJK.search(entry.question))

    english_to_chinese = [q for q in questions if not _CJK.search(q.text) and chinese_entry(q)]
    chinese_to_english = [
        q for q in questions if _CJK.search(q.text) and q.expected and not chinese_entry(q)
    ]
    assert len(english_to_chinese) >= 10
    assert len(chinese_to_english) >= 2


def test_times_are_aware(questions: list[TestQuestion]) -> None:
    for q in questions:
        if q.at is not None:
            assert q.at.utcoffset() == CHINA, q.text


def test_campaign_questions_are_asked_inside_their_window(
    store: KnowledgeBase, questions: list[TestQuestion]
) -> None:
    for q in questions:
        entry = store.entry(q.expected) if q.expected else None
        if entry is not None and entry.campaign is not None:
            assert q.at is not None, f"{q.text!r} expects a campaign entry but has no time"
            assert entry.active_at(q.at), f"{q.text!r}: {entry.id} is not active at {q.at}"


def test_evergreen_questions_with_a_time_fall_outside_overlapping_windows(
    store: KnowledgeBase, questions: list[TestQuestion]
) -> None:
    for q in questions:
        if q.expected in OVERLAPS and q.at is not None:
            for campaign_id in OVERLAPS[q.expected]:
                campaign = store.entry(campaign_id)
                assert campaign is not None
                assert not campaign.active_at(q.at), f"{q.text!r}: {campaign_id} wins at {q.at}"


def test_each_overlapping_topic_is_asked_inside_and_outside(questions: list[TestQuestion]) -> None:
    asked = Counter(q.expected for q in questions if q.at is not None)
    for evergreen_id, campaign_ids in OVERLAPS.items():
        assert asked[evergreen_id] >= 1, evergreen_id
        assert sum(asked[c] for c in campaign_ids) >= 2, campaign_ids


def test_some_out_of_scope_questions_are_campaign_questions_out_of_time(
    store: KnowledgeBase, questions: list[TestQuestion]
) -> None:
    campaigns = [e for e in store.entries if e.campaign]
    late = [q for q in questions if q.expected is None and q.at is not None]
    assert len(late) >= 5
    for q in late:
        assert q.at is not None
        assert not any(text_key(q.text) == text_key(t) for e in campaigns for t in e.texts)


# ------------------------------------------------------------------ the CSV sample


def test_csv_rows_equal_the_first_yaml_entries(store: KnowledgeBase) -> None:
    with STORE_CSV.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == CSV_COLUMNS
        rows = list(reader)
    assert len(rows) == 10
    entries = [
        Entry.model_validate(
            {
                **{k: v for k, v in row.items() if v != ""},
                "variants": tuple(row["variants"].split("|")) if row["variants"] else (),
            }
        )
        for row in rows
    ]
    assert entries == list(store.entries[:10])
    assert {e.category for e in entries} == set(Category)
    assert any(e.campaign for e in entries)


# ------------------------------------------------------------------ the double 12 upload


def test_double12_is_a_small_december_campaign(
    store: KnowledgeBase, double12: KnowledgeBase
) -> None:
    assert 5 <= len(double12.entries) <= 8
    for entry in double12.entries:
        start, end = windows_of(entry)
        assert entry.campaign == "double12-2026", entry.id
        assert start.utcoffset() == CHINA and end.utcoffset() == CHINA, entry.id
        assert (start.year, start.month, end.year, end.month) == (2026, 12, 2026, 12), entry.id
        assert 3 <= len(entry.variants) <= 6, entry.id
    assert not {e.id for e in double12.entries} & {e.id for e in store.entries}
    merged = KnowledgeBase(entries=store.entries + double12.entries)
    keys = [text_key(t) for e in merged.entries for t in e.texts]
    assert len(set(keys)) == len(keys)


def test_double12_tests_expect_its_entries_in_their_windows(double12: KnowledgeBase) -> None:
    assert len(double12.tests) >= len(double12.entries)
    for q in double12.tests:
        assert q.at is not None
        entry = double12.entry(q.expected) if q.expected else None
        if q.expected is not None:
            assert entry is not None and entry.active_at(q.at), q.text
