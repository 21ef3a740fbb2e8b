"""The kefu HTTP application.

Shopper API, channels, knowledge API and admin, handoff API and agent console, in one process.

The embedding model is loaded here once (``KnowledgeRuntime``), and Rasa's custom actions run here
too (``actions.endpoint``, an internal route only Rasa may call), so a knowledge decision is a
function call. ``create_app(settings)`` builds everything; nothing happens at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

import actions
from bot.channels import TelegramChannel, WebChat
from bot.channels.web import WIDGET_DIR
from bot.gateway import Gateway, api
from bot.gateway.backpressure import Backpressure
from bot.gateway.rasa_client import RasaClient, tracker_events
from bot.gateway.settings import BotSettings, get_settings
from handoff import api as handoff_api
from handoff.models import CannedAnswer
from handoff.service import HandoffService, run_sweeper
from kefu.conversation import ConversationStore, Turn
from kefu.http import install_error_handlers
from kefu.redis import async_client
from knowledge import api as knowledge_api
from knowledge.curation import admin_api
from knowledge.curation.admin import AdminService
from knowledge.runtime import KnowledgeRuntime
from knowledge.settings import get_settings as knowledge_settings
from knowledge.text import normalize

logger = logging.getLogger(__name__)

def create_app(settings: BotSettings | None = None) -> FastAPI:
    """Build the gateway app; services start in the lifespan."""
    settings = settings or get_settings()
    redis = async_client(settings.redis_url)
    conversations = ConversationStore(redis)
    rasa = RasaClient(settings.rasa_url, settings.rasa_token.get_secret_value(),
                      timeout=settings.rasa_timeout_seconds)
    knowledge = KnowledgeRuntime(redis)

    async def return_to_bot(ticket: Any, human_turns: list[Turn]) -> None:
        await rasa.append_events(ticket.conversation_id, tracker_events(human_turns))

    handoff = HandoffService(redis, conversations, on_return=return_to_bot)
    gateway = Gateway(rasa, conversations, handoff, normalize=normalize,
                      max_chars=settings.max_message_chars,
                      backpressure=Backpressure(settings.rasa_max_in_flight,
                                                settings.rasa_max_wait_seconds),
                      prefetch=knowledge.service.prefetch if _prefetching(settings) else None)
    web_chat = WebChat(gateway, conversations, redis)
    telegram = TelegramChannel.from_settings(settings, gateway, conversations, handoff, redis)

    async def readiness() -> dict[str, bool]:
        redis_ok = True
        try:
            await redis.ping()
        except Exception:
            redis_ok = False
        return {"redis": redis_ok, "rasa": await rasa.ready(), "knowledge": knowledge.ready}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.load_knowledge:
            await knowledge.start()
        sweeper = asyncio.create_task(run_sweeper(handoff, interval=5.0))
        if telegram is not None:
            await telegram.start()
        try:
            yield
        finally:
            await web_chat.close_all()
            if telegram is not None:
                await telegram.stop()
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await knowledge.stop()
            await rasa.aclose()
            await redis.aclose()

    app = FastAPI(title="kefu", version="0.1.0", lifespan=lifespan,
                  description="E-commerce customer-service bot with human handoff")
    app.include_router(api.create_router(gateway, readiness))
    app.include_router(knowledge_api.create_router(knowledge.service))
    async def canned_answers(text: str) -> list[CannedAnswer]:
        found = await knowledge.service.search_async(text)
        return [CannedAnswer(entry_id=c.entry_id, question=c.question, answer=c.answer,
                             score=c.score) for c in found]

    app.include_router(handoff_api.create_router(handoff, knowledge_search=canned_answers))
    services = actions.Services(knowledge=actions.KnowledgeClient(knowledge.service),
                                conversations=conversations, handoff=handoff, redis=redis)
    app.include_router(actions.create_router(actions.build_executor(services),
                                             settings.action_secret.get_secret_value()))
    app.include_router(admin_api.create_router(AdminService(knowledge, redis),
                                               handoff.agents.authenticate))
    app.include_router(web_chat.create_router())
    if telegram is not None:
        app.include_router(telegram.create_router())
    app.mount("/static", StaticFiles(directory=WIDGET_DIR), name="static")
    install_error_handlers(app)
    app.state.gateway = gateway
    app.state.web_chat = web_chat
    app.state.telegram = telegram
    app.state.handoff = handoff
    app.state.knowledge = knowledge
    app.state.conversations = conversations
    return app


def _prefetching(settings: BotSettings) -> bool:
    """Whether messages are embedded on arrival: this process answers the knowledge decisions."""
    return settings.load_knowledge and knowledge_settings().prefetch_query_vectors
