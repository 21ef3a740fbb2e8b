from __future__ import annotations

from datetime import datetime, timedelta, timezone

from knowledge.curation.diff import ChangeKind, diff_kbs, render_diff
from knowledge.models import Category, Entry, KnowledgeBase, TestQuestion

CST = timezone(timedelta(hours=8))


def _entry(entry_id: str, question: str, **fields: object) -> Entry:
    values: dict[str, object] = {"answer": f"{question} 的答案", "category": Category.PRESALE}
    values.update(fields)
    return Entry(id=entry_id, question=question, **values)  # type: ignore[arg-type]


BASE = KnowledgeBase(
    entries=(
        _entry("ship", "多久发货", variants=("什么时候发货", "几天发货")),
        _entry("invoice", "可以开发票吗"),
        _entry("points", "积分怎么用"),
    ),
    tests=(TestQuestion(text="几天能发货", expected="ship"),),
)


def test_nothing_published_means_everything_is_added() -> None:
    diff = diff_kbs(None, BASE)
    assert [c.entry_id for c in diff.added] == ["ship", "invoice", "points"]
    assert all(c.kind is ChangeKind.ADDED and c.after is not None for c in diff.added)
    assert not diff.changed and not diff.removed and diff.unchanged == 0
    assert diff.tests_added == list(BASE.tests)


def test_same_knowledge_base_is_an_empty_diff() -> None:
    diff = diff_kbs(BASE, BASE, base_version="v1")
    assert diff.is_empty
    assert diff.unchanged == 3
    assert diff.base_version == "v1"


def test_added_changed_removed_with_field_and_variant_details() -> None:
    window = datetime(2025, 12, 1, tzinfo=CST), datetime(2025, 12, 12, 23, 59, tzinfo=CST)
    new = KnowledgeBase(
        entries=(
            _entry("ship", "多久发货", variants=("几天发货", "when do you ship"),
                   answer="48小时内发货"),
            _entry("invoice", "可以开发票吗"),
            _entry("d12-deposit", "双12定金能退吗", campaign="double12",
                   valid_from=window[0], valid_until=window[1]),
        ),
        tests=(TestQuestion(text="双12定金退吗", expected="d12-deposit", at=window[0]),),
    )
    diff = diff_kbs(BASE, new, base_version="v1")

    assert [c.entry_id for c in diff.added] == ["d12-deposit"]
    assert [c.entry_id for c in diff.removed] == ["points"]
    assert diff.removed[0].before == BASE.entries[2]
    assert diff.unchanged == 1
    (changed,) = diff.changed
    assert changed.entry_id == "ship"
    assert {f.field for f in changed.fields} == {"answer", "variants"}
    answer = next(f for f in changed.fields if f.field == "answer")
    assert (answer.before, answer.after) == ("多久发货 的答案", "48小时内发货")
    assert changed.variants_added == ["when do you ship"]
    assert changed.variants_removed == ["什么时候发货"]
    assert diff.tests_added == list(new.tests)
    assert diff.tests_removed == list(BASE.tests)
    assert not diff.is_empty


def test_reordered_variants_or_entries_are_not_changes() -> None:
    reordered = KnowledgeBase(entries=(
        _entry("points", "积分怎么用"),
        _entry("ship", "多久发货", variants=("几天发货", "什么时候发货")),
        _entry("invoice", "可以开发票吗"),
    ), tests=BASE.tests)
    diff = diff_kbs(BASE, reordered)
    assert not diff.added and not diff.removed and not diff.changed
    assert diff.unchanged == 3
    assert diff.is_empty


def test_window_changes_are_reported_as_iso_times() -> None:
    start = datetime(2025, 12, 1, 20, 0, tzinfo=CST)
    moved = KnowledgeBase(entries=(
        *BASE.entries[:2], _entry("points", "积分怎么用", valid_from=start),
    ))
    (changed,) = diff_kbs(BASE, moved).changed
    assert [(f.field, f.before, f.after) for f in changed.fields] == [
        ("valid_from", None, "2025-12-01T20:00:00+08:00")]


def test_render_lists_every_change() -> None:
    new = KnowledgeBase(entries=(
        _entry("ship", "多久发货", variants=("几天发货", "when do you ship")),
        _entry("invoice", "可以开发票吗", answer="可以，电子发票"),
        _entry("gift", "有赠品吗"),
    ))
    text = render_diff(diff_kbs(BASE, new, base_version="v7"))
    lines = text.splitlines()
    assert lines[0] == "against v7: 1 added, 2 changed, 1 removed, 0 unchanged"
    assert "+ gift: 有赠品吗" in lines
    assert "- points: 积分怎么用" in lines
    assert "~ ship: variants" in lines
    assert "    + variant: when do you ship" in lines
    assert "    - variant: 什么时候发货" in lines
    assert "    answer: 可以开发票吗 的答案 -> 可以，电子发票" in lines
    assert "- test: 几天能发货 -> ship" in lines
