"""The HTTP edge every kefu router shares: one error mapping, one session check.

**Errors.** Every error kefu raises on purpose is a :class:`~kefu.errors.KefuError` that carries
its HTTP status, a stable code and its structured fields, so the mapping is written once, here,
and every error answers with the same JSON body::

    {"detail": "what went wrong, in words", "code": "snake_case_code", ...fields}

The app factory calls :func:`install_error_handlers` once; routes raise and never build an error
response or choose a status themselves.

FastAPI's own errors (a body that does not validate, an unknown path) get the same shape, with
``errors`` listing pydantic's complaints (without the input itself: an error answer never echoes
a body back). Redis staying away longer than a request may wait answers 503 ``store_unavailable``
with ``Retry-After``, never a bare 500.

**Bodies.** :class:`RequestLimits` (installed by the app factory around everything) refuses a
body over its route's size (64 KiB unless a prefix says otherwise) with a short 413, before or
while it arrives, and a JSON body holding a lone UTF-16 surrogate (valid JSON, but no text a
shopper can type, and it cannot be stored) with 422.

**Sessions.** Agents log in once (``POST /api/v1/agent/login``) and send
``Authorization: Bearer <token>``; :func:`agent_dependency` turns the token into the
:class:`~kefu.accounts.Agent` for the console, the knowledge admin and any page that needs one;
:func:`optional_agent_dependency` does the same for routes that answer anonymous callers less.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kefu.accounts import Agent
from kefu.errors import KefuError, NotAuthenticated, PayloadTooLarge, StoreUnavailable
from kefu.redis import STORE_AWAY

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
        errors = [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in exc.errors()]
        errors = jsonable_encoder(errors)
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
        return JSONResponse(error_body(detail[:500] or "invalid request", "invalid_request",
                                       errors=errors[:20]), status_code=422)

    async def store_away(_request: Request, exc: Exception) -> JSONResponse:
        return error_response(StoreUnavailable(f"the data store is not reachable: {exc}"))

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return JSONResponse(error_body(str(exc.detail), f"http_{exc.status_code}"),
                            status_code=exc.status_code, headers=exc.headers)

    app.add_exception_handler(KefuError, kefu_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(HTTPException, http_error)
    for outage in STORE_AWAY:
        app.add_exception_handler(outage, store_away)


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


def optional_agent_dependency(
    authenticate: Authenticate,
) -> Callable[..., Awaitable[Agent | None]]:
    """A dependency giving the logged-in agent, or None for a caller without a bearer token.

    A token that is sent but not (or no longer) valid is still NotAuthenticated: a staff member
    whose session lapsed is told so instead of silently getting the anonymous answer.
    """

    async def agent_or_none(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> Agent | None:
        return None if credentials is None else await authenticate(credentials.credentials)

    return agent_or_none


# --- request bodies ---------------------------------------------------------------------------

DEFAULT_BODY_LIMIT = 64 * 1024

class _BadText(KefuError):
    status_code = 422
    code = "invalid_request"


class RequestLimits:
    """ASGI middleware: per-route body size limits (413) and no lone surrogates in JSON (422).

    ``limits`` maps path prefixes to byte limits (the longest matching prefix wins); every other
    path gets ``default``. A body announcing more (``Content-Length``) is refused before it is
    read; one that turns out bigger is refused as soon as it passes the limit. The body is read
    here, whole (it is small by then), and handed to the route as it came.
    """

    def __init__(self, app: ASGIApp, *, default: int = DEFAULT_BODY_LIMIT,
                 limits: Sequence[tuple[str, int]] = ()) -> None:
        self.app = app
        self.default = default
        self.limits = sorted(limits, key=lambda item: -len(item[0]))

    def limit_for(self, path: str) -> int:
        """The body limit of ``path``."""
        return next((limit for prefix, limit in self.limits if path.startswith(prefix)),
                    self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request within its limits."""
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"").decode("latin-1")
        too_large = PayloadTooLarge(f"request body over {limit} bytes", limit=limit)
        if declared.isdigit() and int(declared) > limit:
            await _refuse(send, too_large)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return
            body.extend(message.get("body", b""))
            if len(body) > limit:
                await _refuse(send, too_large)
                return
            if not message.get("more_body"):
                break
        if b"json" in headers.get(b"content-type", b"") and _lone_surrogate(bytes(body)):
            await _refuse(send, _BadText("text holds a lone UTF-16 surrogate (U+D800-U+DFFF): "
                                         "not a character"))
            return
        await self.app(scope, _replay(bytes(body), receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _lone_surrogate(body: bytes) -> bool:
    """Whether a JSON body decodes to text no UTF-8 can hold (an unpaired surrogate escape)."""
    if b"\\u" not in body:
        return False
    try:
        parsed = json.loads(body)
    except ValueError:
        return False  # not JSON: the route's validation says so
    try:
        json.dumps(parsed, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


async def _refuse(send: Send, exc: KefuError) -> None:
    body = json.dumps(error_body(exc.message, exc.code, **exc.fields())).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
    await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
