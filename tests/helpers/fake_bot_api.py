"""A local fake of the Telegram Bot API for python-telegram-bot's ``base_url``.

Tests script what shoppers do (``push_*`` builds updates served by ``getUpdates``, or posted to
the webhook by the test) and read back what the bot did (``calls``, ``sent``). Failures are
scripted per method: a 429 with ``retry_after`` (flood limit), a 502 (outage), a 403 (blocked).

Implemented methods: getMe, getUpdates (long polling with offset), setWebhook, deleteWebhook,
getWebhookInfo, sendMessage, sendChatAction, editMessageReplyMarkup, editMessageText,
answerCallbackQuery, getFile, close, logOut; and the file download getFile points at.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.helpers.live_server import LoopServer

TOKEN = "123456789:TEST-kefu-fake-token"
PHOTO_BYTES = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
BOT_USER = {"id": 123456789, "is_bot": True, "first_name": "kefu", "username": "kefu_test_bot",
            "can_join_groups": False, "can_read_all_group_messages": False,
            "supports_inline_queries": False}


@dataclass
class Call:
    """One Bot API request the bot made."""

    method: str
    params: dict[str, Any]
    status: int = 200


@dataclass
class _Failure:
    status: int
    description: str
    retry_after: int | None = None


@dataclass
class Shopper:
    """A Telegram user chatting with the bot privately (chat id = user id)."""

    id: int
    first_name: str = "小明"
    language_code: str | None = "zh-hans"

    def as_user(self) -> dict[str, Any]:
        user: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.language_code:
            user["language_code"] = self.language_code
        return user

    def as_chat(self) -> dict[str, Any]:
        return {"id": self.id, "type": "private", "first_name": self.first_name}


@dataclass
class FakeBotApi:
    """The fake server; ``async with FakeBotApi() as api`` serves it on a free port."""

    token: str = TOKEN
    calls: list[Call] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    webhook: dict[str, Any] | None = None
    down: bool = False  # every method answers 502 (a Telegram outage)

    def __post_init__(self) -> None:
        self._update_ids = itertools.count(1000)
        self._message_ids = itertools.count(1)
        self._failures: dict[str, deque[_Failure]] = defaultdict(deque)
        self._new_update = asyncio.Event()
        self._server = LoopServer(Starlette(routes=[
            Route("/bot{token}/{method}", self._endpoint, methods=["GET", "POST"]),
            Route("/file/bot{token}/{path:path}", self._file, methods=["GET"]),
        ]))

    async def __aenter__(self) -> FakeBotApi:
        await self._server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._new_update.set()  # release a pending long poll
        await self._server.stop()

    @property
    def base_url(self) -> str:
        """What to pass as ``telegram_base_url`` (PTB appends ``/bot<token>``)."""
        return self._server.url

    # --- scripting shoppers ---------------------------------------------------------------------

    def push(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update for getUpdates; returns it with its update_id."""
        update = {"update_id": next(self._update_ids), **update}
        self.updates.append(update)
        self._new_update.set()
        return update

    def message(self, shopper: Shopper, text: str | None = None, **extra: Any) -> dict[str, Any]:
        """A message body (not yet an update): text or any media fields."""
        body: dict[str, Any] = {"message_id": next(self._message_ids), "date": int(time.time()),
                                "chat": shopper.as_chat(), "from": shopper.as_user(), **extra}
        if text is not None:
            body["text"] = text
            if text.startswith("/"):
                length = len(text.split(" ", 1)[0])
                body["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        return body

    def text_update(self, shopper: Shopper, text: str, *, edited: bool = False) -> dict[str, Any]:
        """An update with a typed message (``edited``: the shopper edited an earlier one)."""
        message = self.message(shopper, text)
        if edited:
            message["edit_date"] = int(time.time())
            return {"edited_message": message}
        return {"message": message}

    def media_update(self, shopper: Shopper, kind: str, *, caption: str | None = None
                     ) -> dict[str, Any]:
        """A photo, sticker, voice or document message."""
        file = {"file_id": f"{kind}-file-id", "file_unique_id": f"{kind}-unique", "file_size": 2048}
        media: dict[str, Any] = {
            "photo": {"photo": [{**file, "width": 90, "height": 90},
                                {**file, "file_id": "photo-large-id", "width": 800, "height": 800}]},
            "sticker": {"sticker": {**file, "type": "regular", "width": 512, "height": 512,
                                    "is_animated": False, "is_video": False, "emoji": "😀"}},
            "voice": {"voice": {**file, "duration": 3, "mime_type": "audio/ogg"}},
            "document": {"document": {**file, "file_name": "发票.pdf",
                                      "mime_type": "application/pdf"}},
        }[kind]
        if caption:
            media["caption"] = caption
        return {"message": self.message(shopper, **media)}

    def button_update(self, shopper: Shopper, sent: dict[str, Any], data: str) -> dict[str, Any]:
        """The shopper pressed the inline button with ``data`` under the bot message ``sent``."""
        return {"callback_query": {
            "id": str(next(self._update_ids)), "from": shopper.as_user(),
            "chat_instance": f"ci-{shopper.id}", "data": data, "message": sent["result"],
        }}

    # --- scripting failures ----------------------------------------------------------------------

    def flood(self, method: str, retry_after: int = 1, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` answer 429 Too Many Requests."""
        for _ in range(times):
            self._failures[method].append(_Failure(
                429, f"Too Many Requests: retry after {retry_after}", retry_after))

    def fail(self, method: str, status: int = 502, times: int = 1,
             description: str = "Bad Gateway") -> None:
        """The next ``times`` calls of ``method`` fail with ``status``."""
        for _ in range(times):
            self._failures[method].append(_Failure(status, description))

    # --- reading what the bot did ----------------------------------------------------------------

    def sent(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """Messages the bot sent successfully (sendMessage params plus the ``result``)."""
        return [c.params for c in self.calls if c.method == "sendMessage" and c.status == 200
                and (chat_id is None or int(c.params["chat_id"]) == chat_id)]

    def texts(self, chat_id: int | None = None) -> list[str]:
        """Texts of :meth:`sent`."""
        return [str(m["text"]) for m in self.sent(chat_id)]

    def attempts(self, method: str) -> list[Call]:
        """Every call of ``method``, failed ones included."""
        return [c for c in self.calls if c.method == method]

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` is true (what the bot did is checked every 20 ms)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; bot sent {self.texts()}")
            await asyncio.sleep(0.02)

    async def wait_for_texts(self, chat_id: int, count: int, timeout: float = 10.0) -> list[str]:
        """Wait until the chat received at least ``count`` messages; returns all its texts."""
        await self.wait_for(lambda: len(self.sent(chat_id)) >= count, timeout)
        return self.texts(chat_id)

    # --- the HTTP side ---------------------------------------------------------------------------

    async def _file(self, request: Request) -> Response:
        """A file getFile pointed at: every file is :data:`PHOTO_BYTES` (a 1×1 PNG)."""
        if request.path_params["token"] != self.token:
            return _error(401, "Unauthorized")
        self.calls.append(Call("download", {"path": request.path_params["path"]}, 200))
        return Response(PHOTO_BYTES, media_type="application/octet-stream")

    async def _endpoint(self, request: Request) -> JSONResponse:
        method = request.path_params["method"]
        if request.path_params["token"] != self.token:
            return _error(401, "Unauthorized")
        params = await _params(request)
        call = Call(method, params)
        self.calls.append(call)
        failure = _Failure(502, "Bad Gateway") if self.down else None
        if failure is None and self._failures[method]:
            failure = self._failures[method].popleft()
        if failure is not None:
            call.status = failure.status
            return _error(failure.status, failure.description, failure.retry_after)
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            call.status = 404
            return _error(404, "Not Found: method not found")
        result = await handler(params)
        if method == "sendMessage":
            params["result"] = result
        return JSONResponse({"ok": True, "result": result})

    async def _api_getMe(self, _params: dict[str, Any]) -> Any:
        return BOT_USER

    async def _api_getUpdates(self, params: dict[str, Any]) -> Any:
        offset = int(params.get("offset") or 0)
        self.updates = [u for u in self.updates if u["update_id"] >= offset]
        if not self.updates:
            self._new_update.clear()
            timeout = min(float(params.get("timeout") or 0), 1.0)
            try:
                await asyncio.wait_for(self._new_update.wait(), timeout)
            except TimeoutError:
                return []
        limit = int(params.get("limit") or 100)
        return self.updates[:limit]

    async def _api_setWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = params
        return True

    async def _api_deleteWebhook(self, _params: dict[str, Any]) -> Any:
        self.webhook = None
        return True

    async def _api_getWebhookInfo(self, _params: dict[str, Any]) -> Any:
        return {"url": (self.webhook or {}).get("url", ""), "has_custom_certificate": False,
                "pending_update_count": 0}

    async def _api_sendMessage(self, params: dict[str, Any]) -> Any:
        chat_id = int(params["chat_id"])
        message: dict[str, Any] = {
            "message_id": next(self._message_ids), "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"}, "from": BOT_USER, "text": params["text"],
        }
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        return message

    async def _api_sendChatAction(self, _params: dict[str, Any]) -> Any:
        return True

    async def _api_editMessageReplyMarkup(self, _params: dict[str, Any]) -> Any:
        return True

    async def _api_editMessageText(self, _params: dict[str, Any]) -> Any:
        return True

    async def _api_answerCallbackQuery(self, _params: dict[str, Any]) -> Any:
        return True

    async def _api_getFile(self, params: dict[str, Any]) -> Any:
        file_id = str(params["file_id"])
        return {"file_id": file_id, "file_unique_id": f"u-{file_id}", "file_size": 2048,
                "file_path": f"files/{file_id}.bin"}

    async def _api_close(self, _params: dict[str, Any]) -> Any:
        return True

    async def _api_logOut(self, _params: dict[str, Any]) -> Any:
        return True


async def _params(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").startswith("application/json"):
        body = await request.json()
        return dict(body) if isinstance(body, dict) else {}
    form = await request.form()
    params: dict[str, Any] = dict(request.query_params)
    for key, value in form.items():
        text = value if isinstance(value, str) else ""
        params[key] = _maybe_json(text)
    return params


def _maybe_json(text: str) -> Any:
    if text[:1] in ("{", "["):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _error(status: int, description: str, retry_after: int | None = None) -> JSONResponse:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return JSONResponse(body, status_code=status)
