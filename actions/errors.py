"""Errors of the actions package (a branch of :class:`kefu.errors.KefuError`).

Tree::

    ActionsError                    base → 500
    ├── KnowledgeUnavailableError   the knowledge service failed → 502
    ├── ActionCallRefused           an action call without the shared secret (not Rasa) → 403
    ├── ActionNotFound              Rasa asked for an action kefu does not have → 404
    └── ActionRejected              an action refused to run (rasa-sdk's ActionExecutionRejection);
                                    Rasa reads ``action_name`` and ``error`` from the body → 400
"""

from __future__ import annotations

from kefu.errors import KefuError


class ActionsError(KefuError):
    """Base of every error the actions package raises."""

    code = "actions_error"


class KnowledgeUnavailableError(ActionsError):
    """The knowledge service could not make a decision or find an entry."""

    status_code = 502
    code = "knowledge_unavailable"


class ActionCallRefused(ActionsError):
    """A call to the action endpoint did not carry the secret Rasa sends: it is not Rasa's."""

    status_code = 403
    code = "action_call_refused"


class ActionNotFound(ActionsError):
    """Rasa asked for an action that is not registered.

    Attributes:
        action_name: the action asked for.
    """

    status_code = 404
    code = "action_not_found"
    field_names = ("action_name",)

    def __init__(self, message: str, *, action_name: str) -> None:
        super().__init__(message)
        self.action_name = action_name


class ActionRejected(ActionsError):
    """An action refused to run; Rasa then tries its other predictions.

    Attributes:
        action_name: the action that refused.
        error: why, as Rasa reads it from the body.
    """

    status_code = 400
    code = "action_rejected"
    field_names = ("action_name", "error")

    def __init__(self, message: str, *, action_name: str) -> None:
        super().__init__(message)
        self.action_name = action_name
        self.error = message
