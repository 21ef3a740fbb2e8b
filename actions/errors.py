"""Errors of the actions package (a branch of :class:`kefu.errors.KefuError`).

Tree::

    ActionsError                    base → 500
    └── KnowledgeUnavailableError   the gateway's knowledge API failed or answered nonsense → 502
"""

from __future__ import annotations

from kefu.errors import KefuError


class ActionsError(KefuError):
    """Base of every error the actions package raises."""

    code = "actions_error"


class KnowledgeUnavailableError(ActionsError):
    """The knowledge API could not be reached or returned an unusable response.

    Attributes:
        upstream_status: the knowledge API's HTTP status, when it answered at all.
    """

    status_code = 502
    code = "knowledge_unavailable"
    field_names = ("upstream_status",)

    def __init__(self, message: str, *, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.upstream_status = upstream_status

