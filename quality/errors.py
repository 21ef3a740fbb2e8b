"""Errors of the quality package (a branch of :class:`kefu.errors.KefuError`).

Tree::

    QualityError                  base → 400
    ├── MessageBlocked            a "block" rule stopped an agent's message → 422
    ├── InvalidRules              a rule set that cannot be saved → 422
    ├── StaleRules                the rules were saved by someone else meanwhile → 409
    └── NotFound                  no such alert, version or ticket note → 404
"""

from __future__ import annotations

from kefu.errors import KefuError


class QualityError(KefuError):
    """Base of every quality error."""

    status_code = 400
    code = "quality_error"


class MessageBlocked(QualityError):
    """An agent's message matched a "block" rule: the shopper never got it."""

    status_code = 422
    code = "message_blocked"
    field_names = ("rule_id", "rule_name", "matched")

    def __init__(self, message: str, *, rule_id: str, rule_name: str, matched: str) -> None:
        super().__init__(message)
        self.rule_id = rule_id
        self.rule_name = rule_name
        self.matched = matched


class InvalidRules(QualityError):
    """A rule set that cannot be saved (bad pattern, duplicate ids, block on shopper text…)."""

    status_code = 422
    code = "invalid_rules"


class StaleRules(QualityError):
    """The rules were saved meanwhile: reload, then save on top of the new version."""

    status_code = 409
    code = "stale_rules"
    field_names = ("live_version",)

    def __init__(self, message: str, *, live_version: int) -> None:
        super().__init__(message)
        self.live_version = live_version


class NotFound(QualityError):
    """No such rules version."""

    status_code = 404
    code = "not_found"
