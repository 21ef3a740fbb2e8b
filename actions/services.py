"""The services the actions call, handed over by the process that serves them (the gateway)."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from actions.knowledge_client import KnowledgeClient
from handoff.service import HandoffService
from kefu.conversation import ConversationStore
from orders.contract import OrderSystem
from orders.proactive import ProactiveService
from orders.workorders import WorkOrderService


@dataclass(frozen=True)
class Services:
    """Knowledge decisions, conversation record, handoff and orders, shared by every action."""

    knowledge: KnowledgeClient
    conversations: ConversationStore
    handoff: HandoffService
    redis: aioredis.Redis  # for the knowledge team's escalation stream
    orders: OrderSystem | None = None  # the store's order system (None: not configured)
    work_orders: WorkOrderService | None = None  # after-sale work orders (工单)
    proactive: ProactiveService | None = None  # order messages the store sends first
