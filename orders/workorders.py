"""After-sale work orders (工单): a shopper's request the back office carries out, in Redis.

A guided flow in chat (``actions/workorders.py``) collects a request's fields, the shopper
confirms a summary, and :meth:`WorkOrderService.create` records it: kind, fields, owner group,
an SLA. Back-office agents claim, annotate and close work orders in the console
(``orders/workorders_api.py``); every status change is told to the shopper as a system turn of
their conversation, which reaches them on their channel (the web chat live, Telegram through the
outbound stream), and "我的工单进度" lists them any time.

Keys: :mod:`kefu.keys` (``kefu:orders:…``). A change is read, checked and written under WATCH
in one transaction, so two agents claiming at once make one owner.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum

import redis.asyncio as aioredis
from pydantic import BaseModel, Field
from redis.exceptions import WatchError

from kefu.conversation import ConversationStore, Role
from kefu.keys import (
    open_work_order_key,
    work_order_key,
    work_order_seq_key,
    work_orders_key,
    work_orders_of_key,
)
from orders.aftersale import WorkOrderKind, spec_of
from orders.errors import WorkOrderNotFound, WorkOrderStateError

logger = logging.getLogger(__name__)

__all__ = ["STATUS_NAMES", "WorkOrder", "WorkOrderKind", "WorkOrderNote", "WorkOrderService",
           "WorkOrderStatus"]


class WorkOrderStatus(StrEnum):
    """Where a work order stands."""

    OPEN = "open"  # recorded, no one has taken it yet
    IN_PROGRESS = "in_progress"  # an agent of the owner group took it
    CLOSED = "closed"  # done; the closing note says what was done


STATUS_NAMES = {
    WorkOrderStatus.OPEN: ("已提交，等待处理", "submitted, waiting to be handled"),
    WorkOrderStatus.IN_PROGRESS: ("处理中", "being handled"),
    WorkOrderStatus.CLOSED: ("已完成", "done"),
}


class WorkOrderNote(BaseModel):
    """A note or status change on a work order."""

    at: datetime
    by: str  # agent username, or "shopper"
    text: str = ""
    status: WorkOrderStatus | None = None  # set when the note records a status change


class WorkOrder(BaseModel):
    """One after-sale request."""

    id: str
    kind: WorkOrderKind
    status: WorkOrderStatus = WorkOrderStatus.OPEN
    conversation_id: str
    channel: str
    order_id: str
    group: str
    fields: dict[str, str] = Field(default_factory=dict)  # what the flow collected
    created_at: datetime
    sla_due: datetime
    owner: str | None = None
    notes: list[WorkOrderNote] = Field(default_factory=list)

    def overdue(self, now: datetime) -> bool:
        """Still not closed past its SLA."""
        return self.status is not WorkOrderStatus.CLOSED and now > self.sla_due


def _pick(language: str | None, zh: str, en: str) -> str:
    return en if language == "en" else zh


class WorkOrderService:
    """Work orders in Redis, and telling the shopper about them."""

    def __init__(self, redis: aioredis.Redis, conversations: ConversationStore,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._redis = redis
        self._conversations = conversations
        self._clock = clock

    async def create(self, conversation_id: str, channel: str, kind: WorkOrderKind,
                     order_id: str, fields: dict[str, str]) -> tuple[WorkOrder, bool]:
        """Record a request; the open one already recorded for it on a repeat. (order, created)."""
        now = self._clock()
        seq = int(await self._redis.incr(work_order_seq_key()))
        spec = spec_of(kind)
        number = f"{spec.prefix}{now:%Y%m%d}{seq:04d}"
        guard = open_work_order_key(conversation_id, kind.value, order_id)
        if not await self._redis.set(guard, number, nx=True):
            existing = await self._redis.get(guard)
            found = await self.get(str(existing.decode() if isinstance(existing, bytes)
                                       else existing))
            return found, False
        order = WorkOrder(id=number, kind=kind, conversation_id=conversation_id, channel=channel,
                          order_id=order_id, group=spec.group, fields=dict(fields),
                          created_at=now, sla_due=now + spec.sla,
                          notes=[WorkOrderNote(at=now, by="shopper",
                                               status=WorkOrderStatus.OPEN)])
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(work_order_key(number), order.model_dump_json())
            pipe.zadd(work_orders_key(), {number: now.timestamp()})
            pipe.zadd(work_orders_of_key(conversation_id), {number: now.timestamp()})
            await pipe.execute()
        logger.info("work order %s (%s) for %s", number, kind.value, conversation_id)
        return order, True

    async def get(self, work_order_id: str) -> WorkOrder:
        """One work order (or :class:`WorkOrderNotFound`)."""
        raw = await self._redis.get(work_order_key(work_order_id))
        if raw is None:
            raise WorkOrderNotFound(f"no work order {work_order_id}",
                                    work_order_id=work_order_id)
        return WorkOrder.model_validate_json(raw)

    async def find(self, *, statuses: set[WorkOrderStatus] | None = None,
                   groups: set[str] | None = None) -> list[WorkOrder]:
        """Work orders, oldest first, of these statuses and groups (all when ``None``)."""
        ids = [i.decode() if isinstance(i, bytes) else str(i)
               for i in await self._redis.zrange(work_orders_key(), 0, -1)]
        return self._filter(await self._many(ids), statuses, groups)

    async def of_conversation(self, conversation_id: str) -> list[WorkOrder]:
        """A conversation's work orders, newest first."""
        ids = [i.decode() if isinstance(i, bytes) else str(i)
               for i in await self._redis.zrevrange(work_orders_of_key(conversation_id), 0, -1)]
        return await self._many(ids)

    async def claim(self, work_order_id: str, agent: str) -> WorkOrder:
        """An agent takes an open work order; the shopper is told it is being handled."""
        def change(order: WorkOrder, now: datetime) -> None:
            if order.status is not WorkOrderStatus.OPEN:
                raise WorkOrderStateError(f"{order.id} is {order.status.value}",
                                          work_order_id=order.id, status=order.status.value)
            order.status, order.owner = WorkOrderStatus.IN_PROGRESS, agent
            order.notes.append(WorkOrderNote(at=now, by=agent,
                                             status=WorkOrderStatus.IN_PROGRESS))

        order = await self._change(work_order_id, change)
        await self._tell(order, "")
        return order

    async def note(self, work_order_id: str, agent: str, text: str) -> WorkOrder:
        """An internal note (the shopper is not told)."""
        def change(order: WorkOrder, now: datetime) -> None:
            order.notes.append(WorkOrderNote(at=now, by=agent, text=text))

        return await self._change(work_order_id, change)

    async def close(self, work_order_id: str, agent: str, note: str) -> WorkOrder:
        """Done: the note says what was done, and the shopper hears it."""
        def change(order: WorkOrder, now: datetime) -> None:
            if order.status is WorkOrderStatus.CLOSED:
                raise WorkOrderStateError(f"{order.id} is closed already",
                                          work_order_id=order.id, status=order.status.value)
            order.status, order.owner = WorkOrderStatus.CLOSED, order.owner or agent
            order.notes.append(WorkOrderNote(at=now, by=agent, text=note,
                                             status=WorkOrderStatus.CLOSED))

        order = await self._change(work_order_id, change, release=True)
        await self._tell(order, note)
        return order

    def progress_line(self, order: WorkOrder, language: str | None) -> str:
        """One line of "我的工单进度"."""
        kind_zh, kind_en = spec_of(order.kind).names
        status_zh, status_en = STATUS_NAMES[order.status]
        return _pick(language, f"工单 {order.id}（{kind_zh}，订单 {order.order_id}）：{status_zh}",
                     f"Work order {order.id} ({kind_en}, order {order.order_id}): {status_en}")

    async def _tell(self, order: WorkOrder, note: str) -> None:
        profile = await self._conversations.profile(order.conversation_id)
        language = profile.get("language")
        text = self.progress_line(order, language)
        if note:
            text += _pick(language, f"。处理说明：{note}", f". Note: {note}")
        await self._conversations.append(order.conversation_id, Role.SYSTEM, text,
                                         meta={"work_order": order.id,
                                               "work_order_status": order.status.value})

    async def _change(self, work_order_id: str, change: Callable[[WorkOrder, datetime], None],
                      *, release: bool = False) -> WorkOrder:
        key = work_order_key(work_order_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        raise WorkOrderNotFound(f"no work order {work_order_id}",
                                                work_order_id=work_order_id)
                    order = WorkOrder.model_validate_json(raw)
                    change(order, self._clock())
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, order.model_dump_json())
                    if release:
                        pipe.delete(open_work_order_key(order.conversation_id, order.kind.value,
                                                        order.order_id))
                    await pipe.execute()
                    return order
                except WatchError:
                    continue

    async def _many(self, ids: list[str]) -> list[WorkOrder]:
        if not ids:
            return []
        raws = await self._redis.mget([work_order_key(i) for i in ids])
        return [WorkOrder.model_validate_json(r) for r in raws if r is not None]

    @staticmethod
    def _filter(orders: list[WorkOrder], statuses: set[WorkOrderStatus] | None,
                groups: set[str] | None) -> list[WorkOrder]:
        return [o for o in orders if (statuses is None or o.status in statuses)
                and (groups is None or o.group in groups)]
