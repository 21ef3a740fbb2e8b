"""Photos from the web chat: uploaded over HTTP, kept in Redis, answered like a Telegram photo.

``POST /api/v1/photos?sender=<sender>`` takes the picture's bytes as the body, authorised exactly
like the shopper's message routes (:mod:`bot.gateway.identity`: the conversation's token as
``Authorization: Bearer``; the per-address and per-conversation rate limits). What the picture is
is read from its first bytes (JPEG, PNG or WebP, else 415), never from the client's
``Content-Type``; a body over the cap is 413. The bytes are kept in Redis (``gw_photo_key``) for the
retention time, then go on through the channels' :class:`AttachmentDesk` as a photo with the file
id ``<photo id>``, so while an after-sale flow asks for a photo Rasa gets
``/send_photo{"photo": "photo:web:<photo id>"}`` (the form takes it as the answer), in a handoff the
agent gets it in the ticket, and otherwise it stays in the transcript and the shopper is told the
bot reads text only, as on Telegram.

Why Redis and not ``var/`` on disk: every gateway behind the load balancer must serve a photo
another one received (the console's "查看照片" and the widget's thumbnail), and Redis is the one
state they share; a TTL deletes each photo on time without a cleaning job.

A conversation's uploads per day (the store's day, ``KEFU_TIMEZONE``) are capped too
(``KEFU_WEB_PHOTO_DAILY_LIMIT`` photos, ``KEFU_WEB_PHOTO_DAILY_BYTES`` bytes), whatever the
message rate allows: the count is checked and taken in the same Lua script that keeps the photo,
so two gateways cannot both take the last one, and a refused photo (429 ``photo_quota_exceeded``,
``Retry-After`` until the store's midnight) is never stored.

``GET /api/v1/photos/{photo_id}?sender=…`` gives the conversation's own photo back to its shopper
(the widget's thumbnail after a reload); :meth:`PhotoStore.fetch` gives it to the console's work-
order route, only for the conversation the work order came from.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Annotated, Any, cast

import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from redis.client import NEVER_DECODE
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.channels.attachments import Attachment, AttachmentDesk, AttachmentKind
from bot.channels.errors import PhotoNotFound, PhotoQuotaExceeded, UnsupportedPhoto
from bot.gateway import Reply
from bot.gateway.api import ShopperLimits, client_address
from bot.gateway.identity import ShopperAccess
from kefu.conversation import ConversationStore, conversation_id
from kefu.errors import PayloadTooLarge
from kefu.http import BEARER
from kefu.keys import gw_photo_key, gw_photo_quota_key
from kefu.limits import RateLimiter

PREFIX = "/api/v1/photos"
CHANNEL = "web"
MEDIA_TYPES = ("image/jpeg", "image/png", "image/webp")
PHOTO_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
Sender = Annotated[str, Query(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$",
                              description="the web chat's sender id")]

QUOTA_SLACK_SECONDS = 60  # the day's count outlives its day a little, never less

# KEYS: the photo, the conversation's day count. ARGV: conversation, media type, bytes, photo
# TTL, most photos a day (0: any), most bytes a day (0: any), this photo's size, count TTL.
# Returns 0 (kept), 1 (the day's count is used up) or 2 (the day's bytes are).
_KEEP_LUA = """
local count = tonumber(redis.call('HGET', KEYS[2], 'count') or '0')
local used = tonumber(redis.call('HGET', KEYS[2], 'bytes') or '0')
local most, most_bytes, size = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
if most > 0 and count + 1 > most then return 1 end
if most_bytes > 0 and used + size > most_bytes then return 2 end
redis.call('HSET', KEYS[1], 'conversation', ARGV[1], 'type', ARGV[2], 'data', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('HINCRBY', KEYS[2], 'count', 1)
redis.call('HINCRBY', KEYS[2], 'bytes', size)
redis.call('EXPIRE', KEYS[2], ARGV[8])
return 0
"""


def media_type_of(content: bytes) -> str | None:
    """The picture type the bytes start with (JPEG, PNG, WebP), else ``None``."""
    if content.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(content) >= 12 and content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass(frozen=True)
class Photo:
    """One kept photo."""

    id: str
    conversation_id: str
    media_type: str
    content: bytes


class PhotoStore:
    """Web chat photos in Redis: checked, kept for ``ttl_seconds``, read back by owner."""

    def __init__(self, redis: aioredis.Redis, *, max_bytes: int, ttl_seconds: int,
                 daily_limit: int = 0, daily_bytes: int = 0, zone: tzinfo = UTC,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._redis = redis
        self.max_bytes = max_bytes
        self.ttl_seconds = ttl_seconds
        self.daily_limit = daily_limit  # photos per conversation and day in ``zone``; 0: no cap
        self.daily_bytes = daily_bytes  # their bytes in all; 0: no cap
        self._zone = zone  # whose midnight starts a new day of the quota
        self._clock = clock

    def check(self, content: bytes) -> str:
        """The media type of an acceptable upload.

        Raises:
            PayloadTooLarge: over ``max_bytes`` (413).
            UnsupportedPhoto: not a JPEG, PNG or WebP by its bytes (415).
        """
        if len(content) > self.max_bytes:
            raise PayloadTooLarge(f"a photo may have at most {self.max_bytes} bytes",
                                  limit=self.max_bytes)
        media_type = media_type_of(content)
        if media_type is None:
            raise UnsupportedPhoto("only JPEG, PNG or WebP pictures are taken", channel=CHANNEL)
        return media_type

    async def keep(self, conversation: str, content: bytes) -> Photo:
        """Check, count and keep a photo of ``conversation``; it expires after the retention time.

        Raises:
            PhotoQuotaExceeded: the conversation's photos for today are used up (429); nothing
                is kept.
        """
        media_type = self.check(content)
        photo = Photo(secrets.token_urlsafe(16), conversation, media_type, content)
        now = self._clock().astimezone(self._zone)
        midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(),
                                    self._zone)
        left = max(1, int((midnight - now).total_seconds()))
        refused = int(await self._redis.eval(
            _KEEP_LUA, 2, gw_photo_key(photo.id),
            gw_photo_quota_key(conversation, now.strftime("%Y%m%d")),
            conversation, media_type, content, self.ttl_seconds, self.daily_limit,
            self.daily_bytes, len(content), left + QUOTA_SLACK_SECONDS))
        if refused:
            quota, limit = ("count", self.daily_limit) if refused == 1 \
                else ("bytes", self.daily_bytes)
            raise PhotoQuotaExceeded(f"this conversation's photos for today are used up "
                                     f"({quota} {limit})", retry_after=left, quota=quota,
                                     limit=limit)
        return photo

    async def get(self, photo_id: str, conversation: str) -> Photo:
        """The photo ``photo_id`` of ``conversation``.

        Raises:
            PhotoNotFound: no such photo, another conversation's, or expired (404).
        """
        if PHOTO_ID.match(photo_id):
            found = cast(list[bytes | None], await self._redis.execute_command(
                "HMGET", gw_photo_key(photo_id), "conversation", "type", "data",
                **{NEVER_DECODE: []}))  # type: ignore[no-untyped-call]
            owner, media_type, content = found
            if owner is not None and owner.decode() == conversation and media_type and content:
                return Photo(photo_id, conversation, media_type.decode(), content)
        raise PhotoNotFound(f"no photo {photo_id} in this conversation", channel=CHANNEL)

    async def fetch(self, photo_id: str, conversation: str) -> tuple[bytes, str]:
        """The console's download of a work order's photo: (bytes, media type)."""
        photo = await self.get(photo_id, conversation)
        return photo.content, photo.media_type


class PhotoReply(Reply):
    """What an upload answers: the gateway's reply, and the photo's id for the thumbnail."""

    photo_id: str


def create_router(store: PhotoStore, desk: AttachmentDesk, conversations: ConversationStore,
                  *, access: ShopperAccess, limiter: RateLimiter,
                  limits: ShopperLimits) -> APIRouter:
    """The upload, the shopper's own download and the limits the widget checks first."""
    router = APIRouter(prefix=PREFIX, tags=["shopper"])

    async def admitted(request: Request, sender: str, credentials: Any) -> str:
        await limiter.take("address", client_address(request), limits.per_address)
        conv = conversation_id(CHANNEL, sender)
        bearer = credentials.credentials if credentials is not None else None
        await access.admit(CHANNEL, conv, bearer, may_start=False)
        return conv

    @router.get("/limits")
    async def photo_limits() -> dict[str, Any]:
        """The largest photo taken (bytes) and the picture types, for the widget to check first."""
        return {"max_bytes": store.max_bytes, "types": list(MEDIA_TYPES),
                "daily_limit": store.daily_limit, "daily_bytes": store.daily_bytes}

    @router.post("", response_model=PhotoReply, response_model_exclude_none=True, responses={
        401: {"description": "this conversation needs its token"},
        403: {"description": "not this conversation's token"},
        413: {"description": "the photo is over the size limit"},
        415: {"description": "not a JPEG, PNG or WebP picture"},
        429: {"description": "too many messages, or (code `photo_quota_exceeded`) the "
                             "conversation's photos for today are used up; Retry-After says "
                             "when to send again"}})
    async def upload(request: Request, sender: Sender, credentials: Credentials) -> PhotoReply:
        """Send a photo into the shopper's web chat (the body is the picture's bytes).

        While an after-sale flow asks for a photo it is the answer; otherwise it stays in the
        transcript and the shopper is told what happens to it.
        """
        conv = await admitted(request, sender, credentials)
        await limiter.take("sender", conv, limits.per_sender)
        photo = await store.keep(conv, await request.body())
        language = (await conversations.profile(conv)).get("language", "zh")
        reply = await desk.receive(CHANNEL, sender, Attachment(AttachmentKind.PHOTO, photo.id),
                                   language=language)
        return PhotoReply(**reply.model_dump(), photo_id=photo.id)

    @router.get("/{photo_id}", response_class=Response,
                responses={200: {"content": {"image/*": {}}}})
    async def download(photo_id: str, request: Request, sender: Sender,
                       credentials: Credentials) -> Response:
        """One of the conversation's own photos (the widget's thumbnail)."""
        photo = await store.get(photo_id, await admitted(request, sender, credentials))
        return Response(photo.content, media_type=photo.media_type,
                        headers={"Cache-Control": "private, max-age=3600"})

    return router


class CrossOriginPhotos:
    """ASGI middleware: the store pages allowed to open the web chat may call the photo routes.

    The widget runs on the store's page, so its upload is a cross-origin request with an
    ``Authorization`` header; only the photo routes answer those origins (CORS), no other route.
    """

    def __init__(self, app: ASGIApp, *, origins: Sequence[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(app, allow_origins=list(origins),
                                   allow_methods=["GET", "POST"],
                                   allow_headers=["authorization", "content-type"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request, with CORS headers on the photo routes."""
        if scope["type"] == "http" and str(scope["path"]).startswith(PREFIX):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
