"""Errors of the knowledge package.

Every error the package raises on purpose derives from one base::

    KnowledgeError
    ├── ValidationFailed       a knowledge-base or questions file has problems (``.problems``)
    ├── VersionNotFound        no published version with that id (``.version_id``)
    ├── NoLiveVersion          nothing has been published yet
    ├── ModelNotPreparedError  an encoder's files are missing (run ``make model``)
    ├── DraftNotFound          no draft with that id, or it expired (``.draft_id``)
    ├── TopicNotFound          no escalation topic with that id now (``.topic_id``)
    └── GateRefused            the version answers its test questions worse than the live one
                               (``.report``); publish with an override reason instead

Each class carries the HTTP ``status_code`` the app (``bot/app.py``, the one mapping) answers with;
the CLI prints problems one per line and exits 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class KnowledgeError(Exception):
    """Base of every error the knowledge package raises on purpose."""


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


class ValidationFailed(KnowledgeError):
    """An input file has one or more problems; none of it was used.

    Attributes:
        problems: every problem found, in file order.
    """

    status_code = 422

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        count = len(self.problems)
        first = str(self.problems[0]) if self.problems else "no details"
        more = f" (and {count - 1} more)" if count > 1 else ""
        super().__init__(f"{count} problem(s): {first}{more}")


class VersionNotFound(KnowledgeError):
    """No published knowledge-base version has that id.

    Attributes:
        version_id: the id that was asked for.
    """

    status_code = 404

    def __init__(self, version_id: str) -> None:
        self.version_id = version_id
        super().__init__(f"no knowledge-base version {version_id!r}")


class NoLiveVersion(KnowledgeError):
    """No knowledge-base version has been published yet."""

    status_code = 409

    def __init__(self) -> None:
        super().__init__(
            "no knowledge-base version is live; publish one with `kefu kb publish FILE`"
        )


class ModelNotPreparedError(KnowledgeError):
    """An encoder's model files are missing or incomplete (run ``make model``)."""

    status_code = 503


class DraftNotFound(KnowledgeError):
    """No knowledge-base draft has that id (drafts expire a week after upload).

    Attributes:
        draft_id: the id that was asked for.
    """

    status_code = 404

    def __init__(self, draft_id: str) -> None:
        self.draft_id = draft_id
        super().__init__(f"no draft {draft_id!r}; upload the file again")


class TopicNotFound(KnowledgeError):
    """No current escalation topic has that id (it was resolved, or escalations moved on).

    Attributes:
        topic_id: the id that was asked for.
    """

    status_code = 404

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

    def __init__(self, report: object, summary: str) -> None:
        self.report = report
        super().__init__(f"{summary}; publish with an override reason to go ahead anyway")
