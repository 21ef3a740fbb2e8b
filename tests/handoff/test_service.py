from __future__ import annotations

import asyncio
import contextlib

import pytest
from redis.asyncio import Redis

from handoff.errors import AlreadyClaimed, LeaseExpired, TicketNotFound
from handoff.models import (
    CONTEXT_SCHEMA_VERSION,
    EventType,
    HandoffReason,
    Priority,
    TicketStatus,
)
from handoff.service import HandoffService
from handoff.sweeper import run_sweeper
from kefu.conversation import Role
from kefu.errors import NotAuthorized
from tests.handoff.conftest import AgentFactory, make_settings, open_ticket, seed_conversation

pytestmark = pytest.mark.redis


async def test_request_handoff_builds_the_context_packet(service: HandoffService,
                                                         make_agent: AgentFactory) -> None:
    await make_agent("li", ["aftersale"])
    await seed_conversation(service, "web:alice")
    ticket = await open_ticket(service, "web:alice", reason=HandoffReason.LOW_CONFIDENCE)
    packet = ticket.context
    assert packet.schema_version == CONTEXT_SCHEMA_VERSION
    assert (packet.ticket_id, packet.conversation_id, packet.channel) == (ticket.id, "web:alice", "web")
    assert packet.group == "aftersale" == ticket.group  # inferred from the bot's last category
    assert packet.display_name == "小明"
    assert [t.text for t in packet.transcript] == ["你好", "您好，请问有什么可以帮您？", "我的退款还没到账"]
    assert packet.analyses[0].candidates[0].entry_id == "refund-time"
    assert packet.analyses[0].intent_confidence == pytest.approx(0.41)
    assert packet.order_number == "E20240611001"
    assert "我的退款还没到账" in packet.summary and "E20240611001" in packet.summary
    assert ticket.status is TicketStatus.WAITING and not ticket.offline
    sent = await service.conversations.sent_to_shopper("web:alice")
    assert "您是下一位" in sent[-1].text
    assert sent[-1].buttons[0].payload == "/back_to_bot"


async def test_a_hundred_concurrent_requests_make_one_ticket(service: HandoffService) -> None:
    await seed_conversation(service, "web:bob")
    tickets = await asyncio.gather(*(open_ticket(service, "web:bob") for _ in range(100)))
    assert len({t.id for t in tickets}) == 1
    waiting = await service.list_tickets(TicketStatus.WAITING)
    assert [t.id for t in waiting] == [tickets[0].id]
    queue_messages = [t for t in await service.conversations.sent_to_shopper("web:bob")
                      if t.role is Role.SYSTEM]
    assert len(queue_messages) == 1


async def test_a_ticket_claimed_between_the_two_reads_is_listed_once(
        service: HandoffService, make_agent: AgentFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    li = await make_agent("li", ["aftersale"])
    ticket = await open_ticket(service, "web:race", group="aftersale")
    tickets = service._tickets
    read_waiting = tickets.waiting_ids

    async def waiting_then_claimed(group: str, start: int, stop: int) -> list[str]:
        ids = await read_waiting(group, start, stop)  # the queue is read, then li claims
        await service.claim(ticket.id, li)
        return ids

    monkeypatch.setattr(tickets, "waiting_ids", waiting_then_claimed)
    listed = await service.list_tickets(agent=li)
    assert [(t.id, t.status) for t in listed] == [(ticket.id, TicketStatus.CLAIMED)]


async def test_queue_orders_by_priority_then_first_come_per_group(service: HandoffService) -> None:
    specs = [("web:n1", Priority.NORMAL, "presale"), ("web:h1", Priority.HIGH, "presale"),
             ("web:n2", Priority.NORMAL, "presale"), ("web:u1", Priority.URGENT, "presale"),
             ("web:h2", Priority.HIGH, "presale"), ("web:l1", Priority.NORMAL, "logistics")]
    for conv, priority, group in specs:
        await open_ticket(service, conv, priority=priority, group=group)
    presale = await service.list_tickets(TicketStatus.WAITING, group="presale")
    assert [t.conversation_id for t in presale] == ["web:u1", "web:h1", "web:h2", "web:n1", "web:n2"]
    positions = [await service.queue_position(t) for t in presale]
    assert positions == [1, 2, 3, 4, 5]
    logistics = await service.list_tickets(TicketStatus.WAITING, group="logistics")
    assert [await service.queue_position(t) for t in logistics] == [1]


async def test_plain_strings_are_accepted(service: HandoffService) -> None:
    ticket = await service.request_handoff("web:str", reason="complaint",  # type: ignore[arg-type]
                                           channel="web", priority=None)
    assert ticket.reason is HandoffReason.COMPLAINT and ticket.priority is Priority.HIGH
    urgent = await service.request_handoff("web:str2", reason="offline_message",  # type: ignore[arg-type]
                                           channel="web", priority="urgent")  # type: ignore[arg-type]
    assert urgent.offline and urgent.priority is Priority.URGENT


async def test_complaint_defaults_to_high_priority_and_escalates_an_open_ticket(
        service: HandoffService) -> None:
    first = await open_ticket(service, "web:c1", reason=HandoffReason.LOW_CONFIDENCE)
    other = await open_ticket(service, "web:c2", reason=HandoffReason.LOW_CONFIDENCE)
    assert first.priority is Priority.NORMAL
    again = await open_ticket(service, "web:c2", reason=HandoffReason.COMPLAINT)
    assert again.id == other.id and again.priority is Priority.HIGH
    assert await service.queue_position(again) == 1
    assert await service.queue_position(first.id) == 2


async def test_concurrent_claims_exactly_one_wins(service: HandoffService,
                                                  make_agent: AgentFactory) -> None:
    agents = [await make_agent(f"a{i}", ["presale"]) for i in range(8)]
    ticket = await open_ticket(service, "web:race", group="presale")
    results = await asyncio.gather(*(service.claim(ticket.id, a) for a in agents),
                                   return_exceptions=True)
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1 and len(losers) == 7
    assert all(isinstance(r, AlreadyClaimed) for r in losers)
    stored = await service.get(ticket.id)
    assert stored.status is TicketStatus.CLAIMED and stored.agent == winners[0].agent
    assert await service.queue_position(ticket.id) is None
    joined = [t.text for t in await service.conversations.sent_to_shopper("web:race")]
    assert sum("已接入" in t for t in joined) == 1


async def test_claim_requires_the_group(service: HandoffService, make_agent: AgentFactory) -> None:
    presale = await make_agent("p", ["presale"])
    ticket = await open_ticket(service, "web:g", group="logistics")
    with pytest.raises(NotAuthorized):
        await service.claim(ticket.id, presale)


async def test_claim_moves_the_queue_and_tells_those_behind(service: HandoffService,
                                                            make_agent: AgentFactory) -> None:
    agent = await make_agent("w", ["presale"])
    tickets = [await open_ticket(service, f"web:q{i}", group="presale") for i in range(3)]
    await service.claim(tickets[0].id, agent)
    last = await service.conversations.sent_to_shopper("web:q2")
    assert "前面还有 1 位" in last[-1].text
    assert await service.queue_position(tickets[2].id) == 2


async def test_shopper_messages_go_into_the_ticket(service: HandoffService,
                                                   make_agent: AgentFactory) -> None:
    agent = await make_agent("m", ["presale"])
    assert await service.open_ticket("web:s") is None
    with pytest.raises(TicketNotFound):
        await service.add_shopper_message("web:s", "hello")
    ticket = await open_ticket(service, "web:s", group="presale")
    assert (await service.open_ticket("web:s")).id == ticket.id  # type: ignore[union-attr]
    async with service.events.subscribe() as feed:
        turn = await service.add_shopper_message("web:s", "<b>还在吗</b> 😀", meta={"channel": "web"})
        event = await feed.get(timeout=2)
    assert event is not None and event.turn is not None and event.turn.id == turn.id
    assert turn.role is Role.SHOPPER and turn.meta["ticket_id"] == ticket.id
    await service.claim(ticket.id, agent)
    reply = await service.reply(ticket.id, agent, "您好，我来帮您查一下")
    transcript = await service.transcript(ticket.id, agent)
    assert [t.text for t in transcript][-3:] == ["<b>还在吗</b> 😀", transcript[-2].text, reply.text]
    assert transcript[-1].role is Role.AGENT and transcript[-1].meta["agent"] == "m"
    assert (await service.get(ticket.id)).first_response_at is not None


async def test_shopper_can_leave_the_queue(service: HandoffService) -> None:
    ticket = await open_ticket(service, "web:leave", group="presale")
    await service.add_shopper_message("web:leave", "/back_to_bot")
    assert await service.open_ticket("web:leave") is None
    assert (await service.get(ticket.id)).status is TicketStatus.CANCELLED


async def test_a_ticket_the_caller_just_read_is_used_as_is(service: HandoffService) -> None:
    await open_ticket(service, "web:read", group="presale")
    ticket = await service.open_ticket("web:read")
    assert ticket is not None
    turn = await service.add_shopper_message("web:read", "还在吗", ticket=ticket)
    assert turn.meta["ticket_id"] == ticket.id
    await service.add_shopper_message("web:read", "/back_to_bot", ticket=ticket)
    assert await service.open_ticket("web:read") is None
    assert (await service.get(ticket.id)).status is TicketStatus.CANCELLED


async def test_lease_expiry_requeues_at_the_old_position(redis: Redis, make_agent: AgentFactory,
                                                         service: HandoffService) -> None:
    fast = HandoffService(redis, service.conversations, make_settings(lease_seconds=0.3))
    agent = await make_agent("gone", ["presale"])
    tickets = [await open_ticket(fast, f"web:l{i}", group="presale") for i in range(3)]
    await fast.claim(tickets[0].id, agent)
    await open_ticket(fast, "web:l3", group="presale")
    assert await fast.requeue_expired() == 0
    await asyncio.sleep(0.5)
    assert await fast.requeue_expired() == 1
    back = await fast.get(tickets[0].id)
    assert back.status is TicketStatus.WAITING and back.agent is None
    assert await fast.queue_position(back) == 1
    with pytest.raises(LeaseExpired):
        await fast.heartbeat(back.id, agent)
    told = await fast.conversations.sent_to_shopper("web:l0")
    assert "重新转接" in told[-1].text


async def test_heartbeat_keeps_the_lease(redis: Redis, service: HandoffService,
                                         make_agent: AgentFactory) -> None:
    fast = HandoffService(redis, service.conversations, make_settings(lease_seconds=0.4))
    agent = await make_agent("hb", ["presale"])
    ticket = await open_ticket(fast, "web:hb", group="presale")
    await fast.claim(ticket.id, agent)
    for _ in range(4):
        await asyncio.sleep(0.2)
        assert await fast.heartbeat(ticket.id, agent) == pytest.approx(0.4)
    assert await fast.requeue_expired() == 0
    assert (await fast.get(ticket.id)).status is TicketStatus.CLAIMED


async def test_the_sweeper_requeues_without_anyone_asking(redis: Redis, service: HandoffService,
                                                          make_agent: AgentFactory) -> None:
    fast = HandoffService(redis, service.conversations, make_settings(lease_seconds=0.2))
    agent = await make_agent("swept", ["presale"])
    ticket = await open_ticket(fast, "web:sweep", group="presale")
    await fast.claim(ticket.id, agent)
    sweeper = asyncio.create_task(run_sweeper(fast, interval=0.05))
    try:
        async with fast.events.subscribe() as feed:
            event = None
            while event is None or event.type is not EventType.TICKET_WAITING:
                event = await feed.get(timeout=3)
                assert event is not None, "no requeue event within 3 s"
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
    assert event.ticket_id == ticket.id and event.previous_agent == "swept"
    assert (await fast.get(ticket.id)).status is TicketStatus.WAITING
