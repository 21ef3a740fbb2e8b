"""Work orders in real Redis: created once, claimed by one, closed with a note, the shopper told."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from kefu.conversation import ConversationStore, Role
from kefu.redis import async_client
from orders.errors import WorkOrderNotFound, WorkOrderStateError
from orders.workorders import WorkOrderKind, WorkOrderService, WorkOrderStatus

pytestmark = pytest.mark.redis

CONV = "web:gift"
NOW = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)
GIFT = WorkOrderKind.GIFT_REGISTRATION


@pytest.fixture
async def service(redis_url: str) -> AsyncIterator[WorkOrderService]:
    redis = async_client(redis_url)
    conversations = ConversationStore(redis)
    await conversations.set_profile(CONV, language="zh", channel="web")
    yield WorkOrderService(redis, conversations, clock=lambda: NOW)
    await redis.aclose()


async def system_turns(service: WorkOrderService) -> list[str]:
    turns = await service._conversations.transcript(CONV)
    return [t.text for t in turns if t.role is Role.SYSTEM]


async def test_created_once_with_group_and_sla(service: WorkOrderService) -> None:
    order, created = await service.create(CONV, "web", GIFT, "2026111900066", {"address": "上海 1号"})
    again, created_again = await service.create(CONV, "web", GIFT, "2026111900066", {"address": "x"})
    assert created and not created_again and again.id == order.id
    assert order.id.startswith("GR20261207") and order.group == "aftersale"
    assert order.sla_due == NOW + timedelta(hours=24) and order.status is WorkOrderStatus.OPEN
    assert not order.overdue(NOW) and order.overdue(NOW + timedelta(hours=25))
    assert [o.id for o in await service.of_conversation(CONV)] == [order.id]
    assert [o.id for o in await service.find(groups={"aftersale"})] == [order.id]
    assert await service.find(groups={"presale"}) == []


async def test_claim_close_and_the_shopper_is_told(service: WorkOrderService) -> None:
    order, _ = await service.create(CONV, "web", GIFT, "2026111900066", {"address": "上海 1号"})
    claimed = await service.claim(order.id, "kim")
    assert claimed.status is WorkOrderStatus.IN_PROGRESS and claimed.owner == "kim"
    noted = await service.note(order.id, "kim", "仓库已备货")
    assert noted.notes[-1].text == "仓库已备货"
    closed = await service.close(order.id, "kim", "已补发，顺丰 SF1")
    assert closed.status is WorkOrderStatus.CLOSED
    assert [n.status for n in closed.notes if n.status] == [
        WorkOrderStatus.OPEN, WorkOrderStatus.IN_PROGRESS, WorkOrderStatus.CLOSED]
    told = await system_turns(service)
    assert told == [f"工单 {order.id}（赠品登记，订单 2026111900066）：处理中",
                    f"工单 {order.id}（赠品登记，订单 2026111900066）：已完成。处理说明：已补发，顺丰 SF1"]
    with pytest.raises(WorkOrderStateError):
        await service.close(order.id, "kim", "again")
    # closed: a new request for the same order is a new work order
    second, created = await service.create(CONV, "web", GIFT, "2026111900066", {})
    assert created and second.id != order.id


async def test_two_agents_claiming_at_once_make_one_owner(service: WorkOrderService) -> None:
    order, _ = await service.create(CONV, "web", GIFT, "2026111900066", {})
    results = await asyncio.gather(service.claim(order.id, "kim"), service.claim(order.id, "li"),
                                   return_exceptions=True)
    assert sum(isinstance(r, WorkOrderStateError) for r in results) == 1
    assert len(await system_turns(service)) == 1


async def test_english_shoppers_hear_english(service: WorkOrderService) -> None:
    await service._conversations.set_profile("web:en", language="en", channel="web")
    order, _ = await service.create("web:en", "web", GIFT, "2026111900066", {})
    await service.claim(order.id, "kim")
    [turn] = [t for t in await service._conversations.transcript("web:en")
              if t.role is Role.SYSTEM]
    assert turn.text == f"Work order {order.id} (gift registration, order 2026111900066): being handled"
    assert turn.meta == {"work_order": order.id, "work_order_status": "in_progress"}


async def test_unknown_work_order(service: WorkOrderService) -> None:
    with pytest.raises(WorkOrderNotFound):
        await service.claim("GR-nope", "kim")
    with pytest.raises(WorkOrderNotFound):
        await service.get("GR-nope")
