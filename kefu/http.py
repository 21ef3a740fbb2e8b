"""The HTTP edge every kefu router shares: one error mapping, one session check.

**Errors.** Every error kefu raises on purpose is a :class:`~kefu.errors.KefuError` that carries
its HTTP status, a stable code and its structured fields, so the mapping is written once, here,
and every error answers with the same JSON body::

    {"detail": "what went wrong, in words", "code": "snake_case_code", ...fields}

FastAPI's own errors (a body that does not validate, an unknown path) get the same shape, with
``errors`` listing pydantic's complaints. The app factory calls :func:`install_error_handlers`
once; routes raise and never build an error response or choose a status themselves.

**Sessions.** Agents log in once (``POST /api/v1/agent/login``) and send
``Authorization: Bearer <token>``; :func:`agent_dependency` turns the token into the
:class:`~kefu.accounts.Agent` for the console, the knowledge admin and any page that needs one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from kefu.accounts import Agent
from kefu.errors import KefuError, NotAuthenticated

Authenticate = Callable[[str], Awaitable[Agent]]
"""Resolves a session token to its agent (``AgentDirectory.authenticate``)."""

BEARER = HTTPBearer(auto_error=False, description="token from POST /api/v1/agent/login")


def error_body(detail: str, code: str, **fields: Any) -> dict[str, Any]:
    """The one JSON shape of every error answer."""
    return {"detail": detail, "code": code, **fields}


def error_response(exc: KefuError) -> JSONResponse:
    """The answer to ``exc``: its status, its headers and the one error body."""
    return JSONResponse(error_body(exc.message, exc.code, **exc.fields()),
                        status_code=exc.status_code, headers=exc.headers() or None)


def install_error_handlers(app: FastAPI) -> None:
    """Map every kefu error, and FastAPI's own, to the one error body (call once per app)."""

    async def kefu_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, KefuError)
        return error_response(exc)

    async def invalid_request(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = jsonable_encoder(exc.errors())
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
        return JSONResponse(error_body(detail or "invalid request", "invalid_request",
                                       errors=errors), status_code=422)

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return JSONResponse(error_body(str(exc.detail), f"http_{exc.status_code}"),
                            status_code=exc.status_code, headers=exc.headers)

    app.add_exception_handler(KefuError, kefu_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(HTTPException, http_error)


def session_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
) -> str:
    """The bearer token of the request (a FastAPI dependency); NotAuthenticated without one."""
    if credentials is None:
        raise NotAuthenticated("missing bearer token")
    return credentials.credentials


def agent_dependency(authenticate: Authenticate) -> Callable[..., Awaitable[Agent]]:
    """A FastAPI dependency giving the logged-in agent of a request (or NotAuthenticated)."""

    async def current_agent(token: Annotated[str, Depends(session_token)]) -> Agent:
        return await authenticate(token)

    return current_agent
