"""Errors of the actions package.

Tree::

    ActionsError
    └── KnowledgeUnavailableError   the gateway's knowledge API failed or answered nonsense
"""

from __future__ import annotations


class ActionsError(Exception):
    """Base of every error the actions package raises."""


class KnowledgeUnavailableError(ActionsError):
    """The knowledge API could not be reached or returned an unusable response."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
