"""The services the actions call, built once per action-server process."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import redis.asyncio as aioredis

from actions.knowledge_client import KnowledgeClient
from actions.settings import get_settings
from handoff.service import HandoffService
from kefu.conversation import ConversationStore
from kefu.redis import async_client


@dataclass(frozen=True)
class Services:
    """Knowledge API client, conversation record and handoff, shared by every action."""

    knowledge: KnowledgeClient
    conversations: ConversationStore
    handoff: HandoffService
    redis: aioredis.Redis  # for the knowledge team's escalation stream


def build_services(gateway_url: str, redis_url: str, *, timeout: float = 10.0) -> Services:
    """Services talking to the given gateway and Redis (one Redis pool for both stores)."""
    redis = async_client(redis_url)
    conversations = ConversationStore(redis)
    return Services(
        knowledge=KnowledgeClient(gateway_url, timeout=timeout),
        conversations=conversations,
        handoff=HandoffService(redis, conversations),
        redis=redis,
    )


@lru_cache
def get_services() -> Services:
    """The process-wide services, from :func:`actions.settings.get_settings`.

    Built lazily on the first action call, i.e. inside the action server's event loop.
    """
    settings = get_settings()
    return build_services(
        settings.gateway_url, settings.redis_url, timeout=settings.knowledge_timeout_seconds
    )
