"""Web chat channel: the WebSocket behind the embeddable widget (``/ws/chat?sender=…``).

The transcript stream is the widget's mailbox: every turn has a stream id, the connection
replays what the client has not seen (after the ``after`` id it sends on connect) and then
follows the stream with XREAD BLOCK, so bot answers, agent replies and queue updates arrive
live and nothing is lost across reconnects. Shopper messages carry a client id (``cid``);
a resent ``cid`` (the ack was lost with the connection) is recognised in a short-lived Redis
hash and not processed twice. The client renders by turn id, so replays are idempotent.

Frames (JSON)::

    client → server
      {"type": "hello", "after": "<last seen id>" | null, "lang": "zh" | "en",
       "token": "<conversation token>" | null}                                  first frame
      {"type": "message", "cid": "<client id>", "text": "<text or button payload>"}
    server → client
      {"type": "token", "token": "<conversation token>"}  a new conversation's token, once: keep it
      {"type": "history", "messages": [Msg, …]}   replay (the last 200 turns when after is null)
      {"type": "message", "message": Msg}          a live turn; Msg.cid marks the echo of a
                                                   message this connection sent
      {"type": "ack", "cid", "id", "mode", "duplicate"}   processed (id: its transcript turn)
      {"type": "typing", "on": true | false}
      {"type": "error", "cid", "code": "invalid" | "unavailable" | "rate_limited" | "retry",
       "detail", "retry_after"?}   rate_limited / retry: the message was not kept; send it
                                   again after retry_after seconds

    Msg = {"id", "role": "shopper" | "bot" | "agent" | "system", "text", "buttons", "at",
           "agent"?, "cid"?, "status"?}
    status = {"state": "waiting" | "serving" | "message_left" | "ended", "ahead"?, "agent"?}
             where the handoff stands after this system message (the widget's status banner)

    GET /api/v1/widget/welcome?lang=zh|en   the greeting and quick questions the widget shows

Who may connect: the page's ``Origin`` must be kefu's own host or one of the configured store
origins (``KEFU_WEB_ORIGINS``), or the handshake is refused (403); a client without an Origin
(not a browser) is let through. The sender id names the conversation, the **conversation token**
proves it is yours (:mod:`bot.gateway.identity`): a new sender gets one in a ``token`` frame right
after its hello; a known sender must send it in the hello (or an ``Authorization: Bearer``
header), or the socket is closed with 4401 (no token) or 4403 (not this conversation's), and the
widget starts a new conversation. Each message counts against the sender's and the address's
rate limits; a refused one gets ``rate_limited`` with ``retry_after`` and stays in the widget's
outbox. If Redis goes away mid-session the socket is closed with 1013 (try again later); the
widget reconnects and resends what was not acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from pathlib import Path
from typing import Any, Literal

import redis.asyncio as aioredis
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from bot.channels.delivery import stop_task
from bot.gateway import Gateway
from bot.gateway.api import ShopperLimits
from bot.gateway.errors import ConversationForbidden, InvalidMessage, UpstreamUnavailable
from bot.gateway.identity import GREETING_TTL_SECONDS, ShopperAccess
from kefu.conversation import ConversationStore, Role, Turn, check_cursor, conversation_id
from kefu.errors import InvalidCursor, NotAuthenticated, TooManyRequests
from kefu.keys import gw_client_ids_key
from kefu.limits import Rate, RateLimiter
from kefu.redis import OUTAGE_ERRORS, STORE_AWAY
from kefu.welcome import Welcome, WelcomeStore

logger = logging.getLogger(__name__)

CHANNEL = "web"
WIDGET_DIR = Path(__file__).parent / "static"  # the widget (widget.js) and its demo store page
SENDER_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
CLIENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
CLOSE_POLICY = 1008  # WebSocket close code: policy violation
CLOSE_TRY_LATER = 1013  # the server cannot serve now (Redis away): reconnect and resend
CLOSE_NO_TOKEN = 4401  # the conversation needs its token
CLOSE_NOT_YOURS = 4403  # the token is not this conversation's
NO_LIMITS = ShopperLimits(per_sender=Rate(0, 0), per_address=Rate(0, 0))


class WebChat:
    """Serves widget connections; one :class:`_Session` per open socket."""

    def __init__(self, gateway: Gateway, conversations: ConversationStore,
                 redis: aioredis.Redis, *, access: ShopperAccess | None = None,
                 limiter: RateLimiter | None = None, limits: ShopperLimits = NO_LIMITS,
                 origins: list[str] | None = None, max_frame_chars: int = 4000,
                 history_limit: int = 200, hello_timeout_seconds: float = 10.0,
                 block_ms: int = 4_000, client_ids_ttl_seconds: int = 24 * 3600) -> None:
        self.gateway = gateway
        self.conversations = conversations
        self.redis = redis
        self.access = access or ShopperAccess(redis)
        self.limiter = limiter or RateLimiter(redis)
        self.limits = limits
        self.origins = {o.rstrip("/").lower() for o in origins or []}
        self.max_frame_chars = max_frame_chars
        self.history_limit = history_limit
        self.hello_timeout = hello_timeout_seconds
        self.block_ms = block_ms
        self.client_ids_ttl = client_ids_ttl_seconds
        self.sessions: set[_Session] = set()

    def create_router(self) -> APIRouter:
        """``GET /ws/chat?sender=…`` (WebSocket) and the widget's welcome."""
        router = APIRouter()
        welcome = WelcomeStore(self.redis)

        @router.get("/api/v1/widget/welcome", tags=["shopper"])
        async def widget_welcome(lang: Literal["zh", "en"] = "zh") -> Welcome:
            """The greeting and quick questions the widget shows when opened."""
            return (await welcome.get()).of(lang)

        @router.websocket("/ws/chat")
        async def chat_socket(websocket: WebSocket, sender: str = "") -> None:
            if not self.origin_allowed(websocket):
                logger.warning("web chat refused for origin %r", websocket.headers.get("origin"))
                await websocket.close(code=CLOSE_POLICY, reason="origin not allowed")
                return
            if not SENDER_PATTERN.match(sender):
                await websocket.close(code=CLOSE_POLICY, reason="sender: 1-128 of [A-Za-z0-9_.-]")
                return
            try:
                await self.limiter.take("address", _address(websocket), self.limits.per_address)
            except TooManyRequests:
                await websocket.close(code=CLOSE_TRY_LATER, reason="too many connections")
                return
            session = _Session(self, websocket, sender)
            self.sessions.add(session)
            try:
                await session.run()
            finally:
                self.sessions.discard(session)

        return router

    def origin_allowed(self, websocket: WebSocket) -> bool:
        """Whether the page asking may open the chat: kefu's own host or a configured store.

        No Origin at all (not a browser: no other site's page acting in the shopper's browser)
        is let through.
        """
        origin = websocket.headers.get("origin")
        if origin is None:
            return True
        origin = origin.rstrip("/").lower()
        host = (websocket.headers.get("host") or "").lower()
        own = {f"http://{host}", f"https://{host}"}
        return origin in own or origin in self.origins

    async def close_all(self, code: int = 1012) -> None:
        """Close every open socket (server restart); widgets reconnect and resume."""
        for session in list(self.sessions):
            await session.close(code)

    async def reserve_client_id(self, conversation: str, cid: str) -> str | None:
        """None for a new client id; for a resent one, its turn id ('' while unknown)."""
        key = gw_client_ids_key(conversation)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, cid, "")
            pipe.hget(key, cid)
            pipe.expire(key, self.client_ids_ttl)
            created, existing, _ = await pipe.execute()
        return None if created else str(existing or "")

    async def settle_client_id(self, conversation: str, cid: str, turn_id: str) -> None:
        """Remember the turn a client id became."""
        await self.redis.hset(gw_client_ids_key(conversation), cid, turn_id)

    async def forget_client_id(self, conversation: str, cid: str) -> None:
        """Nothing was kept for this client id (rejected message): it may be sent again."""
        await self.redis.hdel(gw_client_ids_key(conversation), cid)

    async def find_shopper_turn(self, conversation: str, text: str) -> str | None:
        """The id of the latest shopper turn with this text (when the live echo was missed)."""
        recent = await self.conversations.transcript(conversation)
        for turn in reversed(recent[-50:]):
            if turn.role is Role.SHOPPER and _same_text(text.strip(), turn.text):
                return turn.id
        return None


class _Session:
    """One widget connection: replay, live push, and the shopper's messages in order."""

    def __init__(self, chat: WebChat, websocket: WebSocket, sender: str) -> None:
        self._chat = chat
        self._ws = websocket
        self._sender = sender
        self._conv = conversation_id(CHANNEL, sender)
        self._send_lock = asyncio.Lock()
        self._expect: tuple[str, str, asyncio.Future[str]] | None = None
        self._open = True
        self._token: str | None = None

    async def run(self) -> None:
        await self._ws.accept()
        hello = await self._hello()
        if hello is None:
            await self.close(CLOSE_POLICY)
            return
        pusher: asyncio.Task[None] | None = None
        try:
            if not await self._admit(hello):
                return
            cursor = await self._replay(hello.get("after"))
            pusher = asyncio.create_task(self._push(cursor), name=f"web-push-{self._sender}")
            while self._open:
                frame = await self._receive()
                if frame is not None and frame.get("type") == "message":
                    await self._on_message(frame)
        except WebSocketDisconnect:
            pass
        except STORE_AWAY as exc:
            logger.warning("web chat %s closed, Redis is away: %s", self._conv, exc)
            await self.close(CLOSE_TRY_LATER)
        finally:
            self._open = False
            if pusher is not None:
                await stop_task(pusher)

    async def _admit(self, hello: dict[str, Any]) -> bool:
        """Check the conversation token (or issue one to a new sender); False when refused."""
        token = hello.get("token")
        if not isinstance(token, str) or not token:
            token = _bearer(self._ws)
        try:
            access = await self._chat.access.admit(
                CHANNEL, self._conv, token, may_start=True, ttl_seconds=GREETING_TTL_SECONDS)
        except NotAuthenticated as exc:
            await self._refuse("unauthorized", exc.message, CLOSE_NO_TOKEN)
            return False
        except ConversationForbidden as exc:
            await self._refuse("forbidden", exc.message, CLOSE_NOT_YOURS)
            return False
        self._token = access.issued_token or token
        if access.issued_token:
            await self._send({"type": "token", "token": access.issued_token})
        return True

    async def _refuse(self, code: str, detail: str, close_code: int) -> None:
        await self._send({"type": "error", "cid": None, "code": code, "detail": detail})
        await self.close(close_code)

    async def close(self, code: int) -> None:
        self._open = False
        with contextlib.suppress(Exception):
            await self._ws.close(code=code)

    async def _hello(self) -> dict[str, Any] | None:
        try:
            async with asyncio.timeout(self._chat.hello_timeout):
                frame = await self._receive()
        except (TimeoutError, WebSocketDisconnect):
            return None
        if frame is None or frame.get("type") != "hello":
            return None
        lang = frame.get("lang")
        if lang in ("zh", "en"):
            await self._chat.conversations.set_profile(self._conv, channel=CHANNEL, language=lang)
        return frame

    async def _receive(self) -> dict[str, Any] | None:
        message = await self._ws.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        try:
            frame = json.loads(message.get("text") or "")
        except ValueError:  # binary or malformed frames are ignored
            return None
        return frame if isinstance(frame, dict) else None

    async def _replay(self, after: Any) -> str:
        """Send what the client has not seen; returns the stream id to follow from."""
        valid = isinstance(after, str) and _is_cursor(after)
        turns = await self._chat.conversations.transcript(
            self._conv, after=after if valid else None)
        if not valid:
            turns = turns[-self._chat.history_limit:]
        await self._send({"type": "history", "messages": [_message(t) for t in turns]})
        if turns:
            return turns[-1].id
        return str(after) if valid else "0-0"

    async def _push(self, cursor: str) -> None:
        """Follow the transcript and send every new turn (the echo of ours marked with its cid)."""
        while self._open:
            try:
                turns = await self._chat.conversations.wait_for_turns(
                    self._conv, cursor, self._chat.block_ms)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("web push for %s failed; retrying", self._conv)
                await asyncio.sleep(1.0)
                continue
            for turn in turns:
                cursor = turn.id
                await self._send({"type": "message", "message": self._tagged(turn)})

    def _tagged(self, turn: Turn) -> dict[str, Any]:
        message = _message(turn)
        if self._expect is not None and turn.role is Role.SHOPPER:
            cid, expected, echo = self._expect
            if _same_text(expected, turn.text) and not echo.done():
                message["cid"] = cid
                echo.set_result(turn.id)
        return message

    async def _on_message(self, frame: dict[str, Any]) -> None:
        cid, text = frame.get("cid"), frame.get("text")
        if not (isinstance(cid, str) and CLIENT_ID_PATTERN.match(cid) and isinstance(text, str)
                and len(text) <= self._chat.max_frame_chars):
            await self._send({"type": "error", "cid": cid if isinstance(cid, str) else None,
                              "code": "invalid", "detail": "message needs cid and text"})
            return
        chat = self._chat
        try:
            await chat.limiter.take("address", _address(self._ws), chat.limits.per_address)
            await chat.access.admit(CHANNEL, self._conv, self._token, may_start=False)
            await chat.limiter.take("sender", self._conv, chat.limits.per_sender)
        except TooManyRequests as exc:
            await self._send({"type": "error", "cid": cid, "code": "rate_limited",
                              "detail": exc.message, "retry_after": exc.retry_after})
            return
        except (NotAuthenticated, ConversationForbidden) as exc:
            await self._refuse("forbidden", exc.message, CLOSE_NOT_YOURS)
            return
        known = await self._chat.reserve_client_id(self._conv, cid)
        if known is not None:
            await self._send({"type": "ack", "cid": cid, "id": known or None, "duplicate": True})
            return
        echo: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._expect = (cid, text.strip(), echo)
        await self._send({"type": "typing", "on": True})
        try:
            ack = await self._handle(cid, text, echo)
        finally:
            self._expect = None
            await self._send({"type": "typing", "on": False})
        if ack is not None:
            await self._send(ack)

    async def _handle(self, cid: str, text: str,
                      echo: asyncio.Future[str]) -> dict[str, Any] | None:
        """Run the message through the gateway; the ack to send, None when it was rejected."""
        mode: str | None = None
        try:
            reply = await self._chat.gateway.handle(CHANNEL, self._sender, text)
            mode = reply.mode.value
            if reply.retry_after is not None:  # not kept (Redis away): the widget sends it again
                with contextlib.suppress(*OUTAGE_ERRORS):
                    await self._chat.forget_client_id(self._conv, cid)
                await self._send({"type": "error", "cid": cid, "code": "retry",
                                  "detail": reply.messages[0].text if reply.messages else "",
                                  "retry_after": reply.retry_after})
                return None
        except InvalidMessage as exc:
            await self._chat.forget_client_id(self._conv, cid)
            await self._send({"type": "error", "cid": cid, "code": "invalid",
                              "detail": exc.message})
            return None
        except UpstreamUnavailable as exc:  # the message is kept; the bot could not answer
            await self._send({"type": "error", "cid": cid, "code": "unavailable",
                              "detail": exc.message})
        turn_id = await _wait(echo, 2.0) or await self._chat.find_shopper_turn(self._conv, text)
        if turn_id:
            await self._chat.settle_client_id(self._conv, cid, turn_id)
        return {"type": "ack", "cid": cid, "id": turn_id, "mode": mode, "duplicate": False}

    async def _send(self, frame: dict[str, Any]) -> None:
        if not self._open:
            return
        async with self._send_lock:
            try:
                await self._ws.send_text(json.dumps(frame, ensure_ascii=False))
            except (WebSocketDisconnect, RuntimeError, OSError):
                self._open = False


def _message(turn: Turn) -> dict[str, Any]:
    message: dict[str, Any] = {
        "id": turn.id, "role": turn.role.value, "text": turn.text, "at": turn.at.isoformat(),
        "buttons": [b.model_dump() for b in turn.buttons],
    }
    if turn.role is Role.AGENT and turn.meta.get("agent_name"):
        message["agent"] = str(turn.meta["agent_name"])
    if isinstance(turn.meta.get("status"), dict):
        message["status"] = turn.meta["status"]
    return message


def _is_cursor(after: str) -> bool:
    try:
        check_cursor(after)
    except InvalidCursor:
        return False
    return True


def _address(websocket: WebSocket) -> str:
    return websocket.client.host if websocket.client else "unknown"


def _bearer(websocket: WebSocket) -> str | None:
    scheme, _, value = (websocket.headers.get("authorization") or "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def _same_text(sent: str, stored: str) -> bool:
    # The gateway stores a rating payload /rate{"score":N} as "/rate N".
    return stored == sent or (sent.startswith("/rate") and stored.startswith("/rate "))


async def _wait(future: asyncio.Future[str], timeout: float) -> str | None:
    try:
        return await asyncio.wait_for(asyncio.shield(future), timeout)
    except TimeoutError:
        return None
