"""Transfer, resolve, return to bot, rating, leaving a message: the later half of a ticket's life."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from handoff.errors import (
    AgentUnavailable,
    InvalidInput,
    LeaseExpired,
    RatingNotAllowed,
    TicketStateError,
)
from handoff.models import HandoffReason, Ticket, TicketStatus
from handoff.service import HandoffService
from kefu.accounts import AgentRole
from kefu.conversation import ConversationStore, Role, Turn
from kefu.errors import NotAuthorized
from tests.handoff.conftest import AgentFactory, make_settings, open_ticket, seed_conversation

pytestmark = pytest.mark.redis


async def test_transfer_to_another_group_keeps_the_place_in_line(
        service: HandoffService, make_agent: AgentFactory) -> None:
    presale = await make_agent("pre", ["presale"])
    logistics = await make_agent("log", ["logistics"])
    ticket = await open_ticket(service, "web:t1", group="presale")
    await open_ticket(service, "web:t2", group="logistics")
    await service.claim(ticket.id, presale)
    moved = await service.transfer(ticket.id, presale, group="logistics", note="查物流")
    assert (moved.status, moved.group, moved.agent) == (TicketStatus.WAITING, "logistics", None)
    assert moved.transfers[-1].from_agent == "pre" and moved.transfers[-1].note == "查物流"
    assert await service.queue_position(moved) == 1  # it was handed off before web:t2
    told = await service.conversations.sent_to_shopper("web:t1")
    assert "物流" in told[-1].text
    with pytest.raises(LeaseExpired):
        await service.reply(ticket.id, presale, "还在吗")
    claimed = await service.claim(ticket.id, logistics)
    assert claimed.agent == "log"


async def test_transfer_to_an_agent(service: HandoffService, make_agent: AgentFactory) -> None:
    first = await make_agent("first", ["aftersale"])
    await make_agent("second", ["aftersale"])
    await make_agent("away", ["aftersale"], online=False)
    ticket = await open_ticket(service, "web:ta", group="aftersale")
    await service.claim(ticket.id, first)
    with pytest.raises(AgentUnavailable):
        await service.transfer(ticket.id, first, to_agent="away")
    moved = await service.transfer(ticket.id, first, to_agent="second")
    assert (moved.status, moved.agent) == (TicketStatus.CLAIMED, "second")
    with pytest.raises(NotAuthorized):
        await service.resolve(ticket.id, first)
    with pytest.raises(InvalidInput):
        await service.transfer(ticket.id, first, group="presale", to_agent="second")


async def test_resolve_returns_to_the_bot_and_asks_for_a_rating(
        redis: aioredis.Redis, make_agent: AgentFactory) -> None:
    returned: list[tuple[Ticket, list[Turn]]] = []

    async def on_return(ticket: Ticket, turns: list[Turn]) -> None:
        returned.append((ticket, turns))

    service = HandoffService(redis, ConversationStore(redis), make_settings(), on_return=on_return)
    agent = await make_agent("res", ["aftersale"])
    await seed_conversation(service, "web:r")
    ticket = await open_ticket(service, "web:r", reason=HandoffReason.COMPLAINT)
    await service.add_shopper_message("web:r", "我要投诉，退款还没到")
    await service.claim(ticket.id, agent)
    await service.reply(ticket.id, agent, "已为您加急处理，24小时内到账")
    with pytest.raises(RatingNotAllowed):
        await service.rate("web:r", 5)
    closed = await service.resolve(ticket.id, agent, note="退款已加急", return_to_bot=True)
    assert closed.status is TicketStatus.RETURNED and closed.resolution_note == "退款已加急"
    assert await service.open_ticket("web:r") is None
    assert [t.text for t in returned[0][1]] == ["我要投诉，退款还没到", "已为您加急处理，24小时内到账"]
    assert [t.role for t in returned[0][1]] == [Role.SHOPPER, Role.AGENT]
    last = (await service.conversations.sent_to_shopper("web:r"))[-1]
    assert [b.payload for b in last.buttons] == [f'/rate{{"score":{n}}}' for n in range(1, 6)]
    with pytest.raises(InvalidInput):
        await service.rate("web:r", 6)
    rated = await service.rate("web:r", 4)
    assert rated.rating == 4 and rated.rated_at is not None
    assert (await service.get(ticket.id)).rating == 4
    listed = await service.list_tickets(TicketStatus.RESOLVED)
    assert [t.id for t in listed] == [ticket.id]
    with pytest.raises(TicketStateError):
        await service.resolve(ticket.id, agent)
    assert await service.estimated_wait(
        await open_ticket(service, "web:after", group="aftersale")) is not None


async def test_a_failing_return_hook_still_frees_the_conversation(
        redis: aioredis.Redis, make_agent: AgentFactory, caplog: pytest.LogCaptureFixture) -> None:
    async def broken(_ticket: Ticket, _turns: list[Turn]) -> None:
        raise ConnectionError("rasa down")

    service = HandoffService(redis, ConversationStore(redis), make_settings(), on_return=broken)
    agent = await make_agent("fh", ["presale"])
    ticket = await open_ticket(service, "web:fh", group="presale")
    await service.claim(ticket.id, agent)
    await service.resolve(ticket.id, agent)
    assert await service.open_ticket("web:fh") is None
    assert "on_return hook failed" in caplog.text


async def test_resolve_without_return_to_bot(service: HandoffService,
                                             make_agent: AgentFactory) -> None:
    agent = await make_agent("nr", ["presale"])
    ticket = await open_ticket(service, "web:nr", group="presale")
    await service.claim(ticket.id, agent)
    closed = await service.resolve(ticket.id, agent, note="done", return_to_bot=False)
    assert closed.status is TicketStatus.RESOLVED
    again = await open_ticket(service, "web:nr", group="presale")
    assert again.id != ticket.id  # a new handoff opens a new ticket


async def test_no_agent_online_leaves_a_message(service: HandoffService,
                                                make_agent: AgentFactory) -> None:
    await make_agent("sleepy", ["logistics"], online=False)
    ticket = await open_ticket(service, "web:om", group="logistics",
                               reason=HandoffReason.EXPLICIT_REQUEST)
    assert ticket.offline and ticket.status is TicketStatus.WAITING
    told = await service.conversations.sent_to_shopper("web:om")
    assert "留言" in told[-1].text
    await service.add_shopper_message("web:om", "订单 E123 还没发货，请回电")
    agent = await make_agent("morning", ["logistics"])
    assert [t.id for t in await service.list_tickets(TicketStatus.WAITING, agent=agent)] == [ticket.id]


async def test_outside_service_hours_is_offline_even_with_agents(
        redis: aioredis.Redis, make_agent: AgentFactory) -> None:
    night = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)  # 00:00 in Asia/Shanghai
    service = HandoffService(redis, ConversationStore(redis),
                             make_settings(service_hours="09:00-22:00"), clock=lambda: night)
    await make_agent("late", ["presale"])
    ticket = await open_ticket(service, "web:night", group="presale")
    assert ticket.offline
    assert "服务时间" in (await service.conversations.sent_to_shopper("web:night"))[-1].text


async def test_english_shopper_gets_english(service: HandoffService) -> None:
    await seed_conversation(service, "web:en", shopper="where is my parcel", category="logistics",
                            language="en")
    await open_ticket(service, "web:en")
    text = (await service.conversations.sent_to_shopper("web:en"))[-1].text
    assert text.startswith("No agent is online")


async def test_manager_sees_and_resolves_every_group(service: HandoffService,
                                                     make_agent: AgentFactory) -> None:
    boss = await make_agent("boss", ["presale"], role=AgentRole.MANAGER)
    worker = await make_agent("worker", ["logistics"])
    ticket = await open_ticket(service, "web:mg", group="logistics")
    await service.claim(ticket.id, worker)
    assert [t.id for t in await service.list_tickets(agent=boss)] == [ticket.id]
    closed = await service.resolve(ticket.id, boss, note="manager closed")
    assert closed.closed_by == "boss"


async def test_release_puts_it_back(service: HandoffService, make_agent: AgentFactory) -> None:
    agent = await make_agent("rel", ["presale"])
    first = await open_ticket(service, "web:r1", group="presale")
    await open_ticket(service, "web:r2", group="presale")
    await service.claim(first.id, agent)
    released = await service.release(first.id, agent)
    assert released.status is TicketStatus.WAITING
    assert await service.queue_position(first.id) == 1
    nxt = await service.claim_next(agent)
    assert nxt is not None and nxt.id == first.id
