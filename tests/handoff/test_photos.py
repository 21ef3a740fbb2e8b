"""A ticket's photos over the console API, with a real Redis and the web chat's real photo store.

The transcript turns are written the way the channels write them (``Attachment.as_text()`` and
``as_meta()``, the form's ``photo_message``); the Telegram download is faked at its edge (a
fetcher function, as the app passes ``TelegramChannel.photo``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from actions.aftersale import photo_message
from bot.channels.attachments import Attachment, AttachmentKind
from bot.channels.photos import PhotoStore
from handoff.api import create_router
from handoff.models import Ticket
from handoff.photos import mark_photos, photo_ref
from handoff.service import HandoffService
from kefu.accounts import AgentRole
from kefu.conversation import Role, Turn, utcnow
from kefu.http import install_error_handlers
from kefu.keys import gw_photo_key
from tests.handoff.conftest import PASSWORD, AgentFactory, open_ticket, seed_conversation
from tests.helpers.fake_bot_api import PHOTO_BYTES

pytestmark = pytest.mark.redis

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64
TELEGRAM_FILE = "AgACAgIAAxkBAAIBQ2Xx-photo_id"


@dataclass
class FakeTelegram:
    """Telegram's file download at its edge: what was asked, and whether it answers."""

    files: dict[str, bytes] = field(default_factory=lambda: {TELEGRAM_FILE: JPEG})
    asked: list[tuple[str, str]] = field(default_factory=list)

    async def fetch(self, file_id: str, conversation: str) -> tuple[bytes, str]:
        self.asked.append((file_id, conversation))
        return self.files[file_id], "image/jpeg"  # KeyError: Telegram refused


@dataclass
class Console:
    http: httpx.AsyncClient
    service: HandoffService
    store: PhotoStore
    telegram: FakeTelegram

    async def login(self, username: str) -> dict[str, str]:
        answer = await self.http.post("/api/v1/agent/login",
                                      json={"username": username, "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['token']}"}

    async def photo(self, ticket: Ticket, ref: str, auth: dict[str, str]) -> httpx.Response:
        return await self.http.get(f"/api/v1/tickets/{ticket.id}/photos/{ref}", headers=auth)

    async def transcript(self, ticket: Ticket, auth: dict[str, str]) -> list[Turn]:
        answer = await self.http.get(f"/api/v1/tickets/{ticket.id}/transcript", headers=auth)
        assert answer.status_code == 200, answer.text
        return [Turn.model_validate(t) for t in answer.json()]


@pytest.fixture
async def console(service: HandoffService, redis: aioredis.Redis) -> AsyncIterator[Console]:
    store = PhotoStore(redis, max_bytes=64 * 1024, ttl_seconds=3600)
    telegram = FakeTelegram()
    app = FastAPI()
    app.include_router(create_router(service, photos={"web": store.fetch,
                                                      "telegram": telegram.fetch}))
    install_error_handlers(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kefu.test") as http:
        yield Console(http, service, store, telegram)


async def shopper_sends_photo(service: HandoffService, conv: str, file_id: str,
                              caption: str = "") -> Turn:
    """What the AttachmentDesk writes during a handoff."""
    attachment = Attachment(AttachmentKind.PHOTO, file_id, caption=caption)
    return await service.add_shopper_message(conv, attachment.as_text(),
                                             meta={"attachment": attachment.as_meta()})


async def test_an_agent_of_the_group_sees_the_web_photo_sent_during_the_handoff(
        console: Console, make_agent: AgentFactory) -> None:
    await make_agent("wang", ["aftersale"])
    await seed_conversation(console.service, "web:alice")
    ticket = await open_ticket(console.service, "web:alice", group="aftersale")
    photo = await console.store.keep("web:alice", PHOTO_BYTES)
    await shopper_sends_photo(console.service, "web:alice", photo.id, caption="盒子压坏了")
    auth = await console.login("wang")
    turns = await console.transcript(ticket, auth)
    assert turns[-1].text == f"[图片] file_id={photo.id} 盒子压坏了"
    assert turns[-1].meta["photo"] == photo.id
    assert all("photo" not in t.meta for t in turns[:-1])  # text turns stay text
    seen = await console.photo(ticket, photo.id, auth)
    assert seen.status_code == 200 and seen.content == PHOTO_BYTES
    assert seen.headers["content-type"] == "image/png"
    assert seen.headers["cache-control"] == "private, max-age=300"


async def test_a_photo_answered_in_the_form_before_the_handoff_is_there_too(
        console: Console, make_agent: AgentFactory) -> None:
    await make_agent("wang", ["aftersale"])
    await seed_conversation(console.service, "web:bob")
    photo = await console.store.keep("web:bob", JPEG)
    await console.service.conversations.append("web:bob", Role.SHOPPER,
                                               photo_message("web", photo.id))
    ticket = await open_ticket(console.service, "web:bob", group="aftersale")
    auth = await console.login("wang")
    [marked] = [t for t in await console.transcript(ticket, auth) if "photo" in t.meta]
    assert marked.text == f'/send_photo{{"photo": "photo:web:{photo.id}"}}'
    assert marked.meta["photo"] == photo.id
    seen = await console.photo(ticket, photo.id, auth)
    assert seen.status_code == 200 and seen.content == JPEG
    assert seen.headers["content-type"] == "image/jpeg"


async def test_only_agents_who_may_read_the_ticket_get_its_photos(
        console: Console, make_agent: AgentFactory) -> None:
    await make_agent("wang", ["aftersale"])
    await make_agent("pre", ["presale"])
    await make_agent("boss", ["presale"], role=AgentRole.MANAGER)
    await seed_conversation(console.service, "web:carol")
    ticket = await open_ticket(console.service, "web:carol", group="aftersale")
    photo = await console.store.keep("web:carol", PHOTO_BYTES)
    await shopper_sends_photo(console.service, "web:carol", photo.id)
    other_group = await console.login("pre")
    refused = await console.photo(ticket, photo.id, other_group)
    assert refused.status_code == 403 and refused.json()["code"] == "not_authorized"
    assert (await console.http.get(f"/api/v1/tickets/{ticket.id}/transcript",
                                   headers=other_group)).status_code == 403  # the same rule
    assert (await console.photo(ticket, photo.id, {})).status_code == 401
    assert (await console.photo(ticket, photo.id, await console.login("boss"))).status_code \
        == 200
    wang = await console.login("wang")
    assert (await console.photo(ticket, photo.id, wang)).status_code == 200
    missing = await console.http.get(f"/api/v1/tickets/nope/photos/{photo.id}", headers=wang)
    assert missing.status_code == 404 and missing.json()["code"] == "ticket_not_found"
    # handed to an agent of another group, the ticket's photos go with it
    claimed = await console.service.claim(ticket.id, await console.service.agents.get("wang"))
    await console.service.transfer(claimed.id, await console.service.agents.get("wang"),
                                   to_agent="pre")
    assert (await console.photo(ticket, photo.id, other_group)).status_code == 200


async def test_a_photo_of_another_conversation_is_404(
        console: Console, make_agent: AgentFactory) -> None:
    await make_agent("wang", ["aftersale"])
    await seed_conversation(console.service, "web:dave")
    await seed_conversation(console.service, "web:erin")
    ticket = await open_ticket(console.service, "web:dave", group="aftersale")
    await open_ticket(console.service, "web:erin", group="aftersale")
    erins = await console.store.keep("web:erin", PHOTO_BYTES)
    await shopper_sends_photo(console.service, "web:erin", erins.id)
    auth = await console.login("wang")
    refused = await console.photo(ticket, erins.id, auth)
    assert refused.status_code == 404
    assert refused.json() | {"detail": ""} == {"detail": "", "code": "ticket_photo_not_found",
                                               "ticket_id": ticket.id,
                                               "reason": "not_in_conversation"}
    # Dave types the text of a photo line with Erin's id: without the channel's meta it is text.
    await console.service.add_shopper_message("web:dave", f"[图片] file_id={erins.id}")
    assert (await console.photo(ticket, erins.id, auth)).status_code == 404
    # Even a form answer naming Erin's photo gets nothing: the web store checks the owner.
    await console.service.add_shopper_message("web:dave", photo_message("web", erins.id))
    stolen = await console.photo(ticket, erins.id, auth)
    assert stolen.status_code == 404 and stolen.json()["reason"] == "unavailable"


async def test_an_expired_web_photo_is_404(console: Console, make_agent: AgentFactory,
                                           redis: aioredis.Redis) -> None:
    await make_agent("wang", ["aftersale"])
    await seed_conversation(console.service, "web:fay")
    ticket = await open_ticket(console.service, "web:fay", group="aftersale")
    photo = await console.store.keep("web:fay", PHOTO_BYTES)
    await shopper_sends_photo(console.service, "web:fay", photo.id)
    await redis.delete(gw_photo_key(photo.id))  # its TTL ran out
    gone = await console.photo(ticket, photo.id, await console.login("wang"))
    assert gone.status_code == 404 and gone.json()["reason"] == "unavailable"


async def test_a_telegram_photo_comes_through_the_channels_fetcher(
        console: Console, make_agent: AgentFactory) -> None:
    await make_agent("wang", ["aftersale"])
    await seed_conversation(console.service, "telegram:4242")
    ticket = await open_ticket(console.service, "telegram:4242", group="aftersale",
                               channel="telegram")
    await shopper_sends_photo(console.service, "telegram:4242", TELEGRAM_FILE)
    auth = await console.login("wang")
    assert (await console.transcript(ticket, auth))[-1].meta["photo"] == TELEGRAM_FILE
    seen = await console.photo(ticket, TELEGRAM_FILE, auth)
    assert seen.status_code == 200 and seen.content == JPEG
    assert console.telegram.asked == [(TELEGRAM_FILE, "telegram:4242")]
    del console.telegram.files[TELEGRAM_FILE]  # Telegram no longer gives it
    failed = await console.photo(ticket, TELEGRAM_FILE, auth)
    assert failed.status_code == 404 and failed.json()["reason"] == "unavailable"


def test_photo_turns_are_read_in_both_shapes_and_only_from_the_shopper() -> None:
    def turn(role: Role, text: str, **meta: object) -> Turn:
        return Turn(role=role, text=text, at=utcnow(), meta=dict(meta))

    line = Attachment(AttachmentKind.PHOTO, "abc_DEF-123")
    sticker = Attachment(AttachmentKind.STICKER, "sticker-1")
    assert photo_ref(turn(Role.SHOPPER, line.as_text(), attachment=line.as_meta())) \
        == "abc_DEF-123"
    assert photo_ref(turn(Role.SHOPPER, photo_message("telegram", "Ag-1"))) == "Ag-1"
    assert photo_ref(turn(Role.SHOPPER, sticker.as_text(), attachment=sticker.as_meta())) is None
    assert photo_ref(turn(Role.SHOPPER, line.as_text())) is None  # typed, no meta
    assert photo_ref(turn(Role.AGENT, photo_message("web", "x" * 22))) is None
    assert photo_ref(turn(Role.SHOPPER, "我发了照片 photo:web:abc")) is None
    plain = turn(Role.SHOPPER, "你好")
    [same, marked] = mark_photos([plain, turn(Role.SHOPPER, photo_message("web", "p1"))])
    assert same is plain and marked.meta == {"photo": "p1"}
