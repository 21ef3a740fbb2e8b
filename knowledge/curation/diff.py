"""What a new knowledge base changes against another one (usually the live version).

A manager reviews this before publishing: which entries are added, which are removed, and for every
changed entry which fields changed (variants compared as sets, so reordering is not a change).
Test questions are compared too, since they decide whether a version may be published.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from knowledge.models import Entry, KnowledgeBase, TestQuestion

_COMPARED = ("question", "answer", "category", "campaign", "valid_from", "valid_until")


class ChangeKind(StrEnum):
    """How an entry differs between the base and the new knowledge base."""

    ADDED = "added"  # only in the new knowledge base
    CHANGED = "changed"  # in both, with at least one field different
    REMOVED = "removed"  # only in the base


class FieldChange(BaseModel):
    """One field of an entry that differs (values as text; ``None`` when unset)."""

    field: str
    before: str | None
    after: str | None


class EntryChange(BaseModel):
    """One added, changed or removed entry."""

    kind: ChangeKind
    entry_id: str
    question: str  # the new question (the old one when removed)
    fields: list[FieldChange] = Field(default_factory=list)  # changed entries only
    variants_added: list[str] = Field(default_factory=list)
    variants_removed: list[str] = Field(default_factory=list)
    before: Entry | None = None
    after: Entry | None = None


class KbDiff(BaseModel):
    """Every difference between a base knowledge base and a new one."""

    base_version: str | None = None  # the published version compared against, if any
    added: list[EntryChange] = Field(default_factory=list)
    changed: list[EntryChange] = Field(default_factory=list)
    removed: list[EntryChange] = Field(default_factory=list)
    unchanged: int = 0
    tests_added: list[TestQuestion] = Field(default_factory=list)
    tests_removed: list[TestQuestion] = Field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        """True when the new knowledge base is the same as the base (entries and tests)."""
        return not (self.added or self.changed or self.removed or self.tests_added
                    or self.tests_removed)


def diff_kbs(
    base: KnowledgeBase | None, new: KnowledgeBase, *, base_version: str | None = None
) -> KbDiff:
    """Compare ``new`` against ``base`` (``None``: nothing published yet, so all is added).

    Entries are matched by id and listed in the order of ``new`` (removed ones in the order of
    ``base``).
    """
    old_entries = {e.id: e for e in base.entries} if base is not None else {}
    new_ids = {e.id for e in new.entries}
    result = KbDiff(base_version=base_version)
    for entry in new.entries:
        old = old_entries.get(entry.id)
        if old is None:
            result.added.append(EntryChange(kind=ChangeKind.ADDED, entry_id=entry.id,
                                            question=entry.question, after=entry))
        else:
            change = _changed(old, entry)
            if change.fields:
                result.changed.append(change)
            else:  # equal, or only the order of variants differs
                result.unchanged += 1
    for entry in old_entries.values():
        if entry.id not in new_ids:
            result.removed.append(EntryChange(kind=ChangeKind.REMOVED, entry_id=entry.id,
                                              question=entry.question, before=entry))
    old_tests = list(base.tests) if base is not None else []
    result.tests_added = [t for t in new.tests if t not in old_tests]
    result.tests_removed = [t for t in old_tests if t not in new.tests]
    return result


def _changed(old: Entry, new: Entry) -> EntryChange:
    fields = [
        FieldChange(field=name, before=_text(getattr(old, name)), after=_text(getattr(new, name)))
        for name in _COMPARED
        if getattr(old, name) != getattr(new, name)
    ]
    added = [v for v in new.variants if v not in old.variants]
    removed = [v for v in old.variants if v not in new.variants]
    if added or removed:
        fields.append(FieldChange(field="variants", before=" | ".join(old.variants) or None,
                                  after=" | ".join(new.variants) or None))
    return EntryChange(kind=ChangeKind.CHANGED, entry_id=new.id, question=new.question,
                       fields=fields, variants_added=added, variants_removed=removed,
                       before=old, after=new)


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def render_diff(diff: KbDiff) -> str:
    """The diff as short text lines for the CLI (``+`` added, ``~`` changed, ``-`` removed)."""
    lines = [
        f"against {diff.base_version or 'nothing published'}: {len(diff.added)} added, "
        f"{len(diff.changed)} changed, {len(diff.removed)} removed, {diff.unchanged} unchanged"
    ]
    lines += [f"+ {c.entry_id}: {c.question}" for c in diff.added]
    for change in diff.changed:
        lines.append(f"~ {change.entry_id}: {', '.join(f.field for f in change.fields)}")
        lines += _field_lines(change)
    lines += [f"- {c.entry_id}: {c.question}" for c in diff.removed]
    lines += [f"+ test: {t.text} -> {t.expected or '(no answer)'}" for t in diff.tests_added]
    lines += [f"- test: {t.text} -> {t.expected or '(no answer)'}" for t in diff.tests_removed]
    return "\n".join(lines)


def _field_lines(change: EntryChange) -> Iterable[str]:
    for item in change.fields:
        if item.field == "variants":
            yield from (f"    + variant: {v}" for v in change.variants_added)
            yield from (f"    - variant: {v}" for v in change.variants_removed)
        else:
            yield f"    {item.field}: {_short(item.before)} -> {_short(item.after)}"


def _short(value: str | None, limit: int = 60) -> str:
    if value is None:
        return "(none)"
    flat = " ".join(value.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
