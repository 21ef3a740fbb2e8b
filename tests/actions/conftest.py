"""Services for the actions: real Redis, conversation store and handoff; a fake knowledge service; the
real HTTP order adapter talking to the demo order service in process (httpx's ASGI transport).

Agents are hashed with few bcrypt rounds: tests put agents online, and hashing is not under test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from actions.knowledge_client import KnowledgeClient
from actions.services import Services
from handoff.service import HandoffService
from handoff.settings import HandoffSettings
from kefu.conversation import ConversationStore
from kefu.redis import async_client
from orders.workorders import WorkOrderService
from tests.actions.fakes import FakeKnowledge
from tests.helpers.demo_orders import over_http, seeded


@pytest.fixture
def knowledge() -> FakeKnowledge:
    return FakeKnowledge()


@pytest.fixture
async def services(redis_url: str, knowledge: FakeKnowledge) -> AsyncIterator[Services]:
    redis = async_client(redis_url)
    conversations = ConversationStore(redis)
    yield Services(knowledge=KnowledgeClient(knowledge), conversations=conversations,
                   handoff=HandoffService(redis, conversations, HandoffSettings(bcrypt_rounds=4)),
                   redis=redis)
    await redis.aclose()


@pytest.fixture
async def with_orders(services: Services) -> AsyncIterator[Services]:
    """The services with the demo store's orders behind the real adapter."""
    store = seeded()
    system = over_http(store)
    yield replace(services, orders=system)
    await system.aclose()


@pytest.fixture
def full(with_orders: Services) -> Services:
    """The services with orders and work orders."""
    return replace(with_orders, work_orders=WorkOrderService(with_orders.redis,
                                                             with_orders.conversations))
