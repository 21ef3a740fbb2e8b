"""Fixtures of the handoff tests: a real Redis, a fast-lease service, agents of each group."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
import redis.asyncio as aioredis

from handoff.models import HandoffReason, Ticket
from handoff.service import HandoffService
from handoff.settings import HandoffSettings
from kefu.accounts import Agent, AgentRole, Presence
from kefu.conversation import BotAnalysis, CandidateScore, ConversationStore, Role, utcnow
from kefu.redis import async_client

PASSWORD = "s3cret-密码-pw"


def make_settings(**overrides: Any) -> HandoffSettings:
    values: dict[str, Any] = {"bcrypt_rounds": 4, "lease_seconds": 30.0, "session_ttl_seconds": 3600}
    values.update(overrides)
    return HandoffSettings(**values)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = async_client(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def settings() -> HandoffSettings:
    return make_settings()


@pytest.fixture
async def service(redis: aioredis.Redis, settings: HandoffSettings) -> HandoffService:
    return HandoffService(redis, ConversationStore(redis), settings)


AgentFactory = Callable[..., Coroutine[Any, Any, Agent]]


@pytest.fixture
def make_agent(service: HandoffService) -> AgentFactory:
    async def make(username: str, groups: list[str], *, role: AgentRole = AgentRole.AGENT,
                   online: bool = True) -> Agent:
        await service.agents.add(username, PASSWORD, groups, role=role,
                                 display_name=f"客服{username}")
        if online:
            return await service.agents.set_presence(username, Presence.ONLINE)
        return await service.agents.get(username)

    return make


async def seed_conversation(service: HandoffService, conv: str, *, shopper: str = "我的退款还没到账",
                            category: str = "aftersale", language: str | None = None) -> None:
    """A short bot conversation like the gateway and actions leave it before a handoff."""
    store = service.conversations
    if language:
        await store.set_profile(conv, channel="web", display_name="小明", language=language)
    else:
        await store.set_profile(conv, channel="web", display_name="小明")
    await store.append(conv, Role.SHOPPER, "你好")
    await store.append(conv, Role.BOT, "您好，请问有什么可以帮您？")
    await store.append(conv, Role.SHOPPER, shopper)
    await store.record_analysis(conv, BotAnalysis(
        at=utcnow(), text=shopper, intent="ask_refund", intent_confidence=0.41, decision="handoff",
        category=category,
        candidates=[CandidateScore(entry_id="refund-time", question="退款多久到账", score=0.52)]))
    await store.set_slot(conv, "order_number", "E20240611001")


async def open_ticket(service: HandoffService, conv: str, **kwargs: Any) -> Ticket:
    kwargs.setdefault("reason", HandoffReason.LOW_CONFIDENCE)
    kwargs.setdefault("channel", "web")
    return await service.request_handoff(conv, **kwargs)
