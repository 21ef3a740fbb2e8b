"""Services for the actions: real Redis, conversation store and handoff; a fake knowledge service.

Agents are hashed with few bcrypt rounds: tests put agents online, and hashing is not under test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from actions.knowledge_client import KnowledgeClient
from actions.services import Services
from handoff.service import HandoffService
from handoff.settings import HandoffSettings
from kefu.conversation import ConversationStore
from kefu.redis import async_client
from tests.actions.fakes import FakeKnowledge


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
