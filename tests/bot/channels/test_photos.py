"""The web chat's photo routes with a real gateway, handoff and Redis (Rasa faked at its edge).

Authorised like the message routes (the conversation token), the type read from the bytes,
the size capped, the bytes kept in Redis with a TTL, and the photo passed to Rasa the way a
Telegram photo is, or kept in the transcript with a word to the shopper.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI

from bot.channels.attachments import AttachmentDesk
from bot.channels.errors import PhotoNotFound, UnsupportedPhoto
from bot.channels.photos import (
    PREFIX,
    CrossOriginPhotos,
    PhotoStore,
    create_router,
    media_type_of,
)
from bot.gateway import Gateway, api
from bot.gateway.api import ShopperLimits
from bot.gateway.identity import ShopperAccess
from bot.gateway.rasa_client import RasaClient
from handoff.models import HandoffReason
from handoff.service import HandoffService
from handoff.settings import HandoffSettings
from kefu.conversation import ConversationStore, Role
from kefu.errors import PayloadTooLarge
from kefu.http import RequestLimits, install_error_handlers
from kefu.keys import gw_photo_key, gw_photo_quota_key
from kefu.limits import Rate, RateLimiter
from kefu.redis import async_client
from tests.helpers.fake_bot_api import PHOTO_BYTES
from tests.helpers.fake_rasa import FakeRasa

pytestmark = pytest.mark.redis

MAX_BYTES = 64 * 1024
TTL = 3600
DAILY_LIMIT = 3  # photos per conversation and the shop's day
SHOP_ZONE = ZoneInfo("Asia/Shanghai")
DAILY_BYTES = 2 * MAX_BYTES
STORE_PAGE = "https://shop.example.com"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 32
GIF = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")


@dataclass
class Site:
    http: httpx.AsyncClient
    rasa: FakeRasa
    conversations: ConversationStore
    handoff: HandoffService
    redis: Any
    now: list[datetime] = field(default_factory=lambda: [datetime.now(UTC)])

    async def start(self, sender: str) -> str:
        """The shopper's first message: its conversation token."""
        first = await self.http.post("/api/v1/messages", json={"sender": sender, "text": "你好"})
        token: str = first.json()["conversation_token"]
        return token

    async def upload(self, sender: str, token: str | None, body: bytes,
                     content_type: str = "image/png") -> httpx.Response:
        headers = {"content-type": content_type}
        if token:
            headers["authorization"] = f"Bearer {token}"
        return await self.http.post(PREFIX, params={"sender": sender}, content=body,
                                    headers=headers)

    async def kept_photos(self) -> list[str]:
        return sorted([k async for k in self.redis.scan_iter(match=gw_photo_key("*"))])


@pytest.fixture
async def site(redis_url: str) -> AsyncIterator[Site]:
    redis = async_client(redis_url)
    conversations = ConversationStore(redis)
    handoff = HandoffService(redis, conversations, HandoffSettings(bcrypt_rounds=4))
    rasa = FakeRasa(handoff)
    client = RasaClient("http://rasa", "token", transport=rasa.transport())
    gateway = Gateway(client, conversations, handoff)
    access, limiter = ShopperAccess(redis), RateLimiter(redis)
    limits = ShopperLimits(per_sender=Rate(600, 100), per_address=Rate(6000, 1000))
    now = [datetime.now(UTC)]
    store = PhotoStore(redis, max_bytes=MAX_BYTES, ttl_seconds=TTL, daily_limit=DAILY_LIMIT,
                       daily_bytes=DAILY_BYTES, zone=SHOP_ZONE, clock=lambda: now[0])

    async def ready() -> dict[str, bool]:
        return {}

    app = FastAPI()
    app.include_router(api.create_router(gateway, ready, access=access, limiter=limiter,
                                         limits=limits))
    app.include_router(create_router(store, AttachmentDesk(gateway, conversations, handoff),
                                     conversations, access=access, limiter=limiter,
                                     limits=limits))
    install_error_handlers(app)
    app.add_middleware(RequestLimits, limits=[(PREFIX, MAX_BYTES)])
    app.add_middleware(CrossOriginPhotos, origins=[STORE_PAGE])
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kefu")
    try:
        yield Site(http, rasa, conversations, handoff, redis, now)
    finally:
        await http.aclose()
        await client.aclose()
        await redis.aclose()


def test_the_type_is_read_from_the_bytes() -> None:
    assert media_type_of(PHOTO_BYTES) == "image/png"
    assert media_type_of(JPEG) == "image/jpeg"
    assert media_type_of(WEBP) == "image/webp"
    for other in (GIF, b"", b"RIFF\x00\x00\x00\x00WAVEfmt ", b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"%PDF-1.7"):
        assert media_type_of(other) is None


async def test_a_png_during_a_photo_step_is_kept_and_becomes_the_forms_answer(
        site: Site) -> None:
    token = await site.start("alice")
    await site.conversations.set_profile("web:alice", awaiting="photo")
    answered = await site.upload("alice", token, PHOTO_BYTES, content_type="text/plain")
    assert answered.status_code == 200, answered.text
    photo_id = answered.json()["photo_id"]
    assert answered.json()["mode"] == "bot" and answered.json()["messages"]
    assert site.rasa.messages()[-1] == f'/send_photo{{"photo": "photo:web:{photo_id}"}}'
    key = gw_photo_key(photo_id)
    assert await site.kept_photos() == [key]
    assert 0 < await site.redis.ttl(key) <= TTL
    assert await site.redis.hget(key, "conversation") == "web:alice"
    assert await site.redis.hget(key, "type") == "image/png"
    said = [t.text for t in await site.conversations.transcript("web:alice")
            if t.role is Role.SHOPPER]
    assert said[-1] == f'/send_photo{{"photo": "photo:web:{photo_id}"}}'
    back = await site.http.get(f"{PREFIX}/{photo_id}", params={"sender": "alice"},
                               headers={"authorization": f"Bearer {token}"})
    assert back.status_code == 200 and back.content == PHOTO_BYTES
    assert back.headers["content-type"] == "image/png"
    store = PhotoStore(site.redis, max_bytes=MAX_BYTES, ttl_seconds=TTL)  # the console's fetch
    assert await store.fetch(photo_id, "web:alice") == (PHOTO_BYTES, "image/png")
    with pytest.raises(PhotoNotFound):
        await store.fetch(photo_id, "web:mallory")


async def test_outside_a_photo_step_it_stays_in_the_transcript_and_the_shopper_is_told(
        site: Site) -> None:
    token = await site.start("bob")
    before = len(site.rasa.received)
    answered = await site.upload("bob", token, JPEG, content_type="image/jpeg")
    assert answered.status_code == 200
    body = answered.json()
    [notice] = body["messages"]
    assert "无法查看图片" in notice["text"] and notice["buttons"][0]["payload"] == "/request_human"
    assert len(site.rasa.received) == before  # the bot reads text only: Rasa is not asked
    turns = await site.conversations.transcript("web:bob")
    assert turns[-2].role is Role.SHOPPER and turns[-2].text == f"[图片] file_id={body['photo_id']}"
    assert turns[-2].meta["attachment"] == {"kind": "photo", "file_id": body["photo_id"]}
    assert turns[-1].role is Role.BOT and turns[-1].id == notice["id"]
    await site.conversations.set_profile("web:bob", language="en")
    english = await site.upload("bob", token, WEBP, content_type="image/webp")
    assert "can't open photos" in english.json()["messages"][0]["text"]


async def test_while_an_agent_has_the_chat_the_photo_goes_into_the_ticket(site: Site) -> None:
    token = await site.start("carol")
    await site.handoff.request_handoff("web:carol", reason=HandoffReason.EXPLICIT_REQUEST,
                                       channel="web")
    answered = await site.upload("carol", token, PHOTO_BYTES)
    assert answered.status_code == 200
    assert answered.json()["mode"] == "handoff" and answered.json()["messages"] == []
    turns = await site.conversations.transcript("web:carol")
    assert turns[-1].role is Role.SHOPPER
    assert turns[-1].text == f"[图片] file_id={answered.json()['photo_id']}"


async def test_only_the_conversations_own_token_uploads_and_reads(site: Site) -> None:
    alice = await site.start("alice")
    mallory = await site.start("mallory")
    assert (await site.upload("alice", None, PHOTO_BYTES)).status_code == 401
    refused = await site.upload("alice", mallory, PHOTO_BYTES)
    assert refused.status_code == 403 and refused.json()["code"] == "conversation_forbidden"
    assert (await site.upload("nobody-yet", None, PHOTO_BYTES)).status_code == 401
    assert await site.kept_photos() == []
    photo_id = (await site.upload("alice", alice, PHOTO_BYTES)).json()["photo_id"]
    as_mallory = {"authorization": f"Bearer {mallory}"}
    peek = await site.http.get(f"{PREFIX}/{photo_id}", params={"sender": "alice"},
                               headers=as_mallory)
    assert peek.status_code == 403
    own = await site.http.get(f"{PREFIX}/{photo_id}", params={"sender": "mallory"},
                              headers=as_mallory)  # her own conversation: not there
    assert own.status_code == 404 and own.json()["code"] == "photo_not_found"
    gone = await site.http.get(f"{PREFIX}/{'x' * 22}", params={"sender": "alice"},
                               headers={"authorization": f"Bearer {alice}"})
    assert gone.status_code == 404


async def test_a_wrong_type_is_415_whatever_the_header_says(site: Site) -> None:
    token = await site.start("dave")
    for body in (GIF, b"GIF89a not really", b"\x00" * 100, b""):
        refused = await site.upload("dave", token, body, content_type="image/png")
        assert refused.status_code == 415, body[:10]
        assert refused.json()["code"] == "unsupported_photo"
    assert await site.kept_photos() == []
    assert [t.role for t in await site.conversations.transcript("web:dave")] == [
        Role.SHOPPER, Role.BOT]  # nothing of the refused files


async def test_a_photo_over_the_cap_is_413(site: Site) -> None:
    token = await site.start("erin")
    too_big = PHOTO_BYTES + b"\x00" * MAX_BYTES
    refused = await site.upload("erin", token, too_big)
    assert refused.status_code == 413 and refused.json()["limit"] == MAX_BYTES
    just_fits = PHOTO_BYTES + b"\x00" * (MAX_BYTES - len(PHOTO_BYTES))
    assert (await site.upload("erin", token, just_fits)).status_code == 200
    store = PhotoStore(site.redis, max_bytes=100, ttl_seconds=TTL)  # the route's own check
    with pytest.raises(PayloadTooLarge):
        store.check(PHOTO_BYTES + b"\x00" * 100)
    with pytest.raises(UnsupportedPhoto):
        store.check(GIF)


async def test_the_limits_and_the_store_pages_allowed_to_upload(site: Site) -> None:
    limits = (await site.http.get(f"{PREFIX}/limits")).json()
    assert limits == {"max_bytes": MAX_BYTES, "types": ["image/jpeg", "image/png", "image/webp"],
                      "daily_limit": DAILY_LIMIT, "daily_bytes": DAILY_BYTES}
    asked = {"access-control-request-method": "POST",
             "access-control-request-headers": "authorization,content-type"}
    allowed = await site.http.options(PREFIX, headers={"origin": STORE_PAGE, **asked})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == STORE_PAGE
    other = await site.http.options(PREFIX, headers={"origin": "https://evil.example", **asked})
    assert "access-control-allow-origin" not in other.headers
    messages = await site.http.options("/api/v1/messages",
                                       headers={"origin": STORE_PAGE, **asked})
    assert "access-control-allow-origin" not in messages.headers  # only the photo routes
    token = await site.start("frank")
    refused = await site.http.post(PREFIX, params={"sender": "frank"}, content=GIF, headers={
        "authorization": f"Bearer {token}", "origin": STORE_PAGE})
    assert refused.status_code == 415  # the store's page can read why
    assert refused.headers["access-control-allow-origin"] == STORE_PAGE
    assert json.loads(refused.content)["code"] == "unsupported_photo"


async def test_a_conversations_photos_a_day_are_capped_and_a_refused_one_is_not_kept(
        site: Site) -> None:
    site.now[0] = datetime(2026, 12, 7, 15, 0, 0, tzinfo=UTC)  # 23:00 in the shop (UTC+8)
    token = await site.start("gina")
    other = await site.start("hank")
    for _ in range(DAILY_LIMIT):
        assert (await site.upload("gina", token, JPEG, content_type="image/jpeg")).status_code \
            == 200
    kept, said = await site.kept_photos(), len(await site.conversations.transcript("web:gina"))
    refused = await site.upload("gina", token, PHOTO_BYTES)
    assert refused.status_code == 429
    assert refused.json()["code"] == "photo_quota_exceeded"
    assert refused.json()["quota"] == "count" and refused.json()["limit"] == DAILY_LIMIT
    assert refused.headers["retry-after"] == "3600"  # until the shop's midnight, not UTC's
    assert await site.kept_photos() == kept  # nothing stored, nothing said
    assert len(await site.conversations.transcript("web:gina")) == said
    quota = gw_photo_quota_key("web:gina", "20261207")
    assert await site.redis.hgetall(quota) == {"count": str(DAILY_LIMIT),
                                               "bytes": str(DAILY_LIMIT * len(JPEG))}
    assert 3600 < await site.redis.ttl(quota) <= 3600 + 60
    assert (await site.upload("hank", other, PHOTO_BYTES)).status_code == 200  # per conversation
    site.now[0] += timedelta(hours=1, seconds=1)  # the shop's next day (still 12-07 in UTC)
    assert (await site.upload("gina", token, PHOTO_BYTES)).status_code == 200


async def test_the_bytes_a_day_are_capped_too(site: Site) -> None:
    token = await site.start("ivy")
    big = PHOTO_BYTES + b"\x00" * (MAX_BYTES - len(PHOTO_BYTES))
    assert (await site.upload("ivy", token, big)).status_code == 200
    assert (await site.upload("ivy", token, big)).status_code == 200
    refused = await site.upload("ivy", token, PHOTO_BYTES)  # one byte over DAILY_BYTES is enough
    assert refused.status_code == 429 and refused.json()["quota"] == "bytes"
    assert refused.json()["limit"] == DAILY_BYTES and int(refused.headers["retry-after"]) >= 1
    assert len(await site.kept_photos()) == 2


async def test_two_uploads_at_once_cannot_both_take_the_last_photo(site: Site) -> None:
    token = await site.start("jack")
    for _ in range(DAILY_LIMIT - 1):
        assert (await site.upload("jack", token, JPEG, content_type="image/jpeg")).status_code \
            == 200
    both = await asyncio.gather(*(site.upload("jack", token, JPEG, content_type="image/jpeg")
                                  for _ in range(4)))
    assert sorted(r.status_code for r in both) == [200, 429, 429, 429]
    assert len(await site.kept_photos()) == DAILY_LIMIT
