"""Errors of the knowledge package (a branch of :class:`kefu.errors.KefuError`).

Every error the package raises on purpose derives from one base::

    KnowledgeError             base → 400
    ├── ValidationFailed       a knowledge-base or questions file has problems (``.problems``) → 422
    ├── VersionNotFound        no published version with that id (``.version_id``) → 404
    ├── EntryNotFound          no entry with that id in the live version (``.entry_id``) → 404
    ├── NoLiveVersion          nothing has been published yet → 409
    ├── ModelNotPreparedError  an encoder's files are missing (run ``make model``) → 503
    ├── DraftNotFound          no draft with that id, or it expired (``.draft_id``) → 404
    ├── TopicNotFound          no escalation topic with that id now (``.topic_id``) → 404
    └── GateRefused            the version answers its test questions worse than the live one
                               (``.report``); publish with an override reason instead → 409

Each class carries the HTTP ``status_code``, ``code`` and fields the app answers with (mapped once
for the whole app in `kefu.http`); the CLI prints problems one per line and exits 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kefu.errors import KefuError
from knowledge.problem_text import location_in_chinese, message_in_chinese


class KnowledgeError(KefuError):
    """Base of every error the knowledge package raises on purpose."""

    status_code = 400
    code = "knowledge_error"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file, precise enough to fix it without guessing.

    Attributes:
        file: the file name (or ``<upload>``) the problem is in.
        location: where in the file: ``row 3`` (CSV/XLSX, header is row 1), ``entries[2] (id=x)``
            (YAML), ``line 7`` (JSONL) or ``file`` for the whole file.
        field: the column/key concerned, or ``None`` when the problem is the whole record.
        message: what is wrong and, when useful, what would be right.
    """

    file: str
    location: str
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.location}"
        if self.field:
            where += f": {self.field}"
        return f"{where}: {self.message}"

    def in_chinese(self) -> dict[str, str | None]:
        """Location, field and message as the knowledge admin shows them by default."""
        return {"location_zh": location_in_chinese(self.location),
                "field_zh": location_in_chinese(self.field) if self.field else None,
                "message_zh": message_in_chinese(self.message)}


class ValidationFailed(KnowledgeError):
    """An input file has one or more problems; none of it was used.

    Attributes:
        problems: every problem found, in file order.
    """

    status_code = 422
    code = "validation_failed"

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        count = len(self.problems)
        first = str(self.problems[0]) if self.problems else "no details"
        more = f" (and {count - 1} more)" if count > 1 else ""
        super().__init__(f"{count} problem(s): {first}{more}")

    def fields(self) -> dict[str, Any]:  # noqa: D102
        return {"problems": [{"file": p.file, "location": p.location, "field": p.field,
                              "message": p.message, "text": str(p), **p.in_chinese()}
                             for p in self.problems]}


class VersionNotFound(KnowledgeError):
    """No published knowledge-base version has that id.

    Attributes:
        version_id: the id that was asked for.
    """

    status_code = 404
    code = "version_not_found"
    field_names = ("version_id",)

    def __init__(self, version_id: str) -> None:
        self.version_id = version_id
        super().__init__(f"no knowledge-base version {version_id!r}")


class EntryNotFound(KnowledgeError):
    """The live knowledge base has no entry with that id.

    Attributes:
        entry_id: the id that was asked for.
    """

    status_code = 404
    code = "entry_not_found"
    field_names = ("entry_id",)

    def __init__(self, entry_id: str) -> None:
        self.entry_id = entry_id
        super().__init__(f"no entry {entry_id!r} in the live knowledge base")


class NoLiveVersion(KnowledgeError):
    """No knowledge-base version has been published yet."""

    status_code = 409
    code = "no_live_version"

    def __init__(self) -> None:
        super().__init__(
            "no knowledge-base version is live; publish one with `kefu kb publish FILE`"
        )


class ModelNotPreparedError(KnowledgeError):
    """An encoder's model files are missing or incomplete (run ``make model``)."""

    status_code = 503
    code = "model_not_prepared"


class DraftNotFound(KnowledgeError):
    """No knowledge-base draft has that id (drafts expire a week after upload).

    Attributes:
        draft_id: the id that was asked for.
    """

    status_code = 404
    code = "draft_not_found"
    field_names = ("draft_id",)

    def __init__(self, draft_id: str) -> None:
        self.draft_id = draft_id
        super().__init__(f"no draft {draft_id!r}; upload the file again")


class TopicNotFound(KnowledgeError):
    """No current escalation topic has that id (it was resolved, or escalations moved on).

    Attributes:
        topic_id: the id that was asked for.
    """

    status_code = 404
    code = "topic_not_found"
    field_names = ("topic_id",)

    def __init__(self, topic_id: str) -> None:
        self.topic_id = topic_id
        super().__init__(f"no escalation topic {topic_id!r}; list them again")


class GateRefused(KnowledgeError):
    """Publishing was refused: the version answers its test questions worse than the live one.

    Attributes:
        report: the gate report (a ``knowledge.curation.review.GateReport``) with every
            question's outcome.
    """

    status_code = 409
    code = "gate_refused"

    def __init__(self, report: object, summary: str) -> None:
        self.report = report
        super().__init__(f"{summary}; publish with an override reason to go ahead anyway")

    def fields(self) -> dict[str, Any]:  # noqa: D102
        dump = getattr(self.report, "model_dump", None)
        return {"gate": dump(mode="json")} if callable(dump) else {}
