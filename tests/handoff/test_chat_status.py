"""What the shopper is told as the handoff moves, and the status each message carries for the
widget's banner: queue position, the serving agent, a message left, nothing once it is over.

Also: an order number typed while a person owns the chat reaches the ticket, and the bot can ask
whether anyone of a group is online before moving a shopper.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from handoff.models import EventType, HandoffReason, Priority, TicketStatus
from handoff.service import HandoffService
from kefu.conversation import ConversationStore, Role
from tests.handoff.conftest import AgentFactory, make_settings, open_ticket, seed_conversation

pytestmark = pytest.mark.redis


async def statuses(service: HandoffService, conv: str) -> list[dict[str, Any]]:
    """The status of every system message sent to the shopper, in order."""
    turns = await service.conversations.sent_to_shopper(conv)
    return [t.meta["status"] for t in turns if t.role is Role.SYSTEM and "status" in t.meta]


async def test_each_step_of_the_handoff_carries_the_chats_state(
        service: HandoffService, make_agent: AgentFactory) -> None:
    li = await make_agent("li", ["presale"])
    await open_ticket(service, "web:first", group="presale")
    ticket = await open_ticket(service, "web:second", group="presale")
    assert (await statuses(service, "web:second"))[-1] == {"state": "waiting", "ahead": 1}

    first = (await service.list_tickets(TicketStatus.WAITING))[0]
    await service.claim(first.id, li)  # the one ahead is taken: the second moves up
    assert (await statuses(service, "web:second"))[-1] == {"state": "waiting", "ahead": 0}

    await service.claim(ticket.id, li)
    assert (await statuses(service, "web:second"))[-1] == {"state": "serving", "agent": "客服li"}
    await service.resolve(ticket.id, li, note="done")
    assert (await statuses(service, "web:second"))[-1] == {"state": "ended"}


async def test_leaving_the_queue_ends_the_banner(service: HandoffService,
                                                 make_agent: AgentFactory) -> None:
    await make_agent("li", ["presale"])
    await open_ticket(service, "web:c", group="presale")
    await service.cancel("web:c")
    assert [s["state"] for s in await statuses(service, "web:c")] == ["waiting", "ended"]


async def test_nobody_online_the_message_waits(service: HandoffService) -> None:
    ticket = await open_ticket(service, "web:off", group="aftersale")
    assert ticket.offline
    assert await statuses(service, "web:off") == [{"state": "message_left"}]


async def test_a_transfer_keeps_the_place_and_priority_without_a_new_estimate(
        service: HandoffService, make_agent: AgentFactory) -> None:
    ai = await make_agent("ai", ["presale"])
    await make_agent("log", ["logistics"])
    ticket = await open_ticket(service, "web:t1", group="presale", priority=Priority.HIGH,
                               reason=HandoffReason.COMPLAINT)
    later = await open_ticket(service, "web:t2", group="logistics", priority=Priority.HIGH)
    await service.claim(ticket.id, ai)
    moved = await service.transfer(ticket.id, ai, group="logistics", note="查物流单号")

    assert (moved.group, moved.priority, moved.seq) == ("logistics", Priority.HIGH, ticket.seq)
    assert moved.created_at == ticket.created_at  # the SLA clock is not restarted
    assert await service.queue_position(moved) == 1 and await service.queue_position(later) == 2
    told = await service.conversations.sent_to_shopper("web:t1")
    # no language known yet: both; and no new "预计等待约 N 分钟"
    assert told[-1].text == ("已为您转接物流客服，请稍候。\n"
                             "You have been transferred to our logistics team; please hold on.")
    assert told[-1].meta["status"] == {"state": "waiting", "ahead": 0}
    transfer = moved.transfers[-1]
    assert (transfer.by, transfer.by_name, transfer.note) == ("ai", "客服ai", "查物流单号")


async def test_transfer_to_an_agent_names_them(service: HandoffService,
                                               make_agent: AgentFactory) -> None:
    ai = await make_agent("ai", ["aftersale"])
    await make_agent("bo", ["aftersale"])
    ticket = await open_ticket(service, "web:ta", group="aftersale")
    await service.claim(ticket.id, ai)
    await service.transfer(ticket.id, ai, to_agent="bo", note="老顾客")
    assert (await statuses(service, "web:ta"))[-1] == {"state": "serving", "agent": "客服bo"}


async def test_an_order_number_typed_after_the_handoff_reaches_the_agent(
        service: HandoffService, make_agent: AgentFactory) -> None:
    await make_agent("li", ["aftersale"])
    await seed_conversation(service, "web:o", category="aftersale")
    await service.conversations.set_slot("web:o", "order_number", "")
    ticket = await open_ticket(service, "web:o")
    async with service.events.subscribe() as feed:
        await service.add_shopper_message("web:o", "我的订单 2026 1120 1234 5 到哪了")
        kinds = [(await feed.get(2.0)), (await feed.get(2.0))]
    updated = await service.get(ticket.id)
    assert updated.context.order_number == "2026112012345"
    assert "2026112012345" not in ticket.context.summary  # the summary stays as it was
    assert await service.conversations.slots("web:o") == {"order_number": "2026112012345"}
    assert [k.type for k in kinds if k is not None] == [EventType.TURN, EventType.TICKET_UPDATED]


async def test_availability_of_the_group_a_handoff_would_reach(
        service: HandoffService, make_agent: AgentFactory) -> None:
    await seed_conversation(service, "web:av", category="logistics")
    nobody = await service.availability("web:av")
    assert (nobody.group, nobody.online, nobody.open) == ("logistics", 0, False)
    await make_agent("log", ["logistics"])
    assert (await service.availability("web:av")).open
    assert not (await service.availability("web:av", "presale")).open


async def test_outside_service_hours_nobody_is_available(redis: Any,
                                                        make_agent: AgentFactory) -> None:
    noon = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
    morning_only = HandoffService(redis, ConversationStore(redis),
                                  make_settings(service_hours="09:00-11:00"), clock=lambda: noon)
    await make_agent("li", ["presale"])
    available = await morning_only.availability("web:x", "presale")
    assert (available.online, available.in_hours, available.open) == (1, False, False)
