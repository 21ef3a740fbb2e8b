"""The one base of every error kefu raises on purpose, and the account errors.

Every error carries the HTTP status the app answers with (``status_code``), a stable ``code`` and
its structured fields (the attributes named in ``field_names``, or ``fields()``); `kefu.http` turns
any of them into one JSON body, ``{"detail": message, "code": code, **fields}``, in one place. Each
package keeps one base of its own, derived from :class:`KefuError`, with its branch of the tree in
its ``errors.py``.

Tree::

    KefuError                    base; → 500 unless a subclass says otherwise
    ├── AccountError             agent accounts, sessions and roles (kefu.accounts) → 400
    │   ├── NotAuthenticated     no, bad or expired session token; wrong password → 401
    │   ├── NotAuthorized        a known agent may not do this (group, owner, role) → 403
    │   ├── AgentNotFound        no such agent → 404
    │   ├── AgentExists          an agent with that username already exists → 409
    │   └── InvalidAccount       a username, password or group list that cannot be used → 422
    ├── PageNotFound             no such file on a page (kefu.pages) → 404
    ├── InvalidCursor            an ``after`` that is no message id (kefu.conversation) → 422
    ├── PayloadTooLarge          a request body over the limit (kefu.http) → 413
    ├── TooManyRequests          over a rate limit or a login throttle (kefu.limits) → 429
    ├── StoreUnavailable         Redis stayed away longer than the request could wait → 503
    ├── KnowledgeError           knowledge/errors.py
    ├── HandoffError             handoff/errors.py
    ├── ActionsError             actions/errors.py
    └── GatewayError             bot/gateway/errors.py (channel errors: bot/channels/errors.py)
"""

from __future__ import annotations

from typing import Any, ClassVar


class KefuError(Exception):
    """Base of every kefu error: a message, a status, a code and structured fields."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "error"
    field_names: ClassVar[tuple[str, ...]] = ()  # attributes that go into the API body

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def fields(self) -> dict[str, Any]:
        """The structured fields of the error, for the API body (JSON-ready values)."""
        return {name: getattr(self, name) for name in self.field_names}

    def headers(self) -> dict[str, str]:
        """HTTP headers the answer needs (``Retry-After``, ``WWW-Authenticate``)."""
        return {}


class AccountError(KefuError):
    """Base of the errors of agent accounts, sessions and roles."""

    status_code = 400
    code = "account_error"


class NotAuthenticated(AccountError):
    """The caller is not a logged-in agent."""

    status_code = 401
    code = "not_authenticated"

    def headers(self) -> dict[str, str]:  # noqa: D102
        return {"WWW-Authenticate": "Bearer"}


class NotAuthorized(AccountError):
    """A logged-in agent tried something their role, groups or ownership do not allow."""

    status_code = 403
    code = "not_authorized"
    field_names = ("agent", "action")

    def __init__(self, message: str, *, agent: str, action: str) -> None:
        super().__init__(message)
        self.agent = agent
        self.action = action


class AgentNotFound(AccountError):
    """No agent with that username."""

    status_code = 404
    code = "agent_not_found"
    field_names = ("username",)

    def __init__(self, message: str, *, username: str) -> None:
        super().__init__(message)
        self.username = username


class AgentExists(AccountError):
    """The username is taken."""

    status_code = 409
    code = "agent_exists"
    field_names = ("username",)

    def __init__(self, message: str, *, username: str) -> None:
        super().__init__(message)
        self.username = username


class InvalidAccount(AccountError):
    """A username, password or list of groups an account cannot have."""

    status_code = 422
    code = "invalid_account"
    field_names = ("field",)

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class PageNotFound(KefuError):
    """A page served by `kefu.pages` has no file of that name."""

    status_code = 404
    code = "page_not_found"
    field_names = ("name",)

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message)
        self.name = name



class InvalidCursor(KefuError):
    """An ``after`` cursor that is not a message id (``<milliseconds>-<sequence>``)."""

    status_code = 422
    code = "invalid_cursor"
    field_names = ("after",)

    def __init__(self, message: str, *, after: str) -> None:
        super().__init__(message)
        self.after = after[:64]


class PayloadTooLarge(KefuError):
    """A request body over the size the route accepts."""

    status_code = 413
    code = "payload_too_large"
    field_names = ("limit",)

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class TooManyRequests(KefuError):
    """Over a rate limit (a sender, a client address) or a failed-login throttle."""

    status_code = 429
    code = "too_many_requests"
    field_names = ("scope", "retry_after")

    def __init__(self, message: str, *, scope: str, retry_after: int) -> None:
        super().__init__(message)
        self.scope = scope
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:  # noqa: D102
        return {"Retry-After": str(self.retry_after)}


class StoreUnavailable(KefuError):
    """Redis did not answer within the time a request may wait; nothing was changed."""

    status_code = 503
    code = "store_unavailable"
    field_names = ("retry_after",)

    def __init__(self, message: str, *, retry_after: int = 2) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:  # noqa: D102
        return {"Retry-After": str(self.retry_after)}
