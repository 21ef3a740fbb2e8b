"""The services the actions call, handed over by the process that serves them (the gateway)."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from actions.knowledge_client import KnowledgeClient
from handoff.service import HandoffService
from kefu.conversation import ConversationStore


@dataclass(frozen=True)
class Services:
    """Knowledge decisions, conversation record and handoff, shared by every action."""

    knowledge: KnowledgeClient
    conversations: ConversationStore
    handoff: HandoffService
    redis: aioredis.Redis  # for the knowledge team's escalation stream
