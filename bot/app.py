"""The kefu HTTP application.

Shopper API, channels, knowledge API and admin, handoff API and agent console, in one process.

The embedding model is loaded here once (``KnowledgeRuntime``), and Rasa's custom actions run here
too (``actions.endpoint``, an internal route only Rasa may call), so a knowledge decision is a
function call. ``create_app(settings)`` builds everything; nothing happens at import time.

Around every route: request body limits (``kefu.http.RequestLimits``); per shopper route: who may
act for the conversation and rate limits (``bot.gateway.api``). The lease sweeper is not here: it
runs as its own process (``handoff.sweeper``), so it does not stop with the gateways.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from pydantic import SecretStr

import actions
from bot.channels import AttachmentDesk, TelegramChannel, WebChat, photos
from bot.channels.web import WIDGET_DIR
from bot.gateway import Gateway, api
from bot.gateway.backpressure import Backpressure
from bot.gateway.fallback import Fallback, IntentExamples
from bot.gateway.identity import ShopperAccess
from bot.gateway.rasa_client import RasaClient, tracker_events
from bot.gateway.settings import BotSettings, get_settings
from handoff import api as handoff_api
from handoff.models import CannedAnswer
from handoff.service import HandoffService
from handoff.sweeper import sweeper_alive
from kefu import metrics
from kefu.conversation import ConversationStore, Turn
from kefu.http import RequestLimits, install_error_handlers
from kefu.limits import Rate, RateLimiter
from kefu.redis import async_client
from kefu.settings import store_zone
from knowledge import api as knowledge_api
from knowledge.curation import admin_api
from knowledge.curation.admin import AdminService
from knowledge.runtime import KnowledgeRuntime
from knowledge.settings import get_settings as knowledge_settings
from knowledge.text import normalize
from orders import HttpOrderSystem, proactive_api, proactive_webhook, workorders_api
from orders import api as orders_api
from orders.proactive import ProactiveService
from orders.settings import get_settings as order_settings
from orders.workorders import WorkOrderService
from quality import QualityRuntime

logger = logging.getLogger(__name__)

UPLOAD_BODY_LIMIT = 6 * 1024 * 1024  # a knowledge base file (5 MiB) in its multipart form
ACTION_CALL_BODY_LIMIT = 2 * 1024 * 1024  # Rasa's action calls carry the current turn
SERVING_CHECKS = ("redis", "knowledge")  # what a gateway needs to answer shoppers at all


def create_app(settings: BotSettings | None = None) -> FastAPI:
    """Build the gateway app; services start in the lifespan."""
    settings = settings or get_settings()
    redis = async_client(settings.redis_url)
    conversations = ConversationStore(redis)
    rasa = RasaClient(settings.rasa_url, _secret(settings.rasa_token, "KEFU_RASA_TOKEN"),
                      timeout=settings.rasa_timeout_seconds)
    knowledge = KnowledgeRuntime(redis)
    order_system = HttpOrderSystem.from_settings(order_settings())  # None: no order system
    work_orders = WorkOrderService(redis, conversations)
    proactive = ProactiveService.from_settings(redis, conversations, order_system,
                                               order_settings())

    async def return_to_bot(ticket: Any, human_turns: list[Turn]) -> None:
        await rasa.append_events(ticket.conversation_id, tracker_events(human_turns))

    handoff = HandoffService(redis, conversations, on_return=return_to_bot)
    knowledge_client = actions.KnowledgeClient(knowledge.service)
    fallback = Fallback(knowledge_client, handoff, conversations, IntentExamples.load(normalize))
    quality = QualityRuntime(redis, handoff)  # checks every message this process keeps
    gateway = Gateway(rasa, conversations, handoff, normalize=normalize,
                      max_chars=settings.max_message_chars,
                      backpressure=Backpressure(settings.rasa_max_in_flight,
                                                settings.rasa_max_wait_seconds),
                      prefetch=knowledge.service.prefetch if _prefetching(settings) else None,
                      fallback=fallback, redis_wait_seconds=settings.redis_wait_seconds)
    access = ShopperAccess(redis, {name: key.get_secret_value()
                                   for name, key in settings.channel_api_keys.items()},
                           wait_seconds=settings.redis_wait_seconds)
    limiter = RateLimiter(redis)
    limits = api.ShopperLimits(
        per_sender=Rate(settings.sender_rate_per_minute, settings.sender_burst),
        per_address=Rate(settings.address_rate_per_minute, settings.address_burst))
    web_chat = WebChat(gateway, conversations, redis, access=access, limiter=limiter,
                       limits=limits, origins=settings.web_origins,
                       max_frame_chars=settings.max_message_chars * 2)
    telegram = TelegramChannel.from_settings(settings, gateway, conversations, handoff, redis)
    web_photos = photos.PhotoStore(redis, max_bytes=settings.web_photo_max_bytes,
                                   ttl_seconds=int(settings.web_photo_retention_days * 86400),
                                   daily_limit=settings.web_photo_daily_limit,
                                   daily_bytes=settings.web_photo_daily_bytes,
                                   zone=store_zone())
    action_secret = _secret(settings.action_secret, "KEFU_ACTION_SECRET")

    async def readiness() -> dict[str, bool]:
        redis_ok = True
        try:
            await redis.ping()
            sweeping = await sweeper_alive(redis)
        except Exception:
            redis_ok = sweeping = False
        # The actions run here: they answer when the knowledge index and Redis (handoff) do.
        return {"redis": redis_ok, "rasa": await rasa.ready(), "knowledge": knowledge.ready,
                "actions": knowledge.ready and redis_ok, "sweeper": sweeping}

    def serving(checks: dict[str, bool]) -> bool:
        return all(checks.get(name, False) for name in SERVING_CHECKS)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.load_knowledge:
            await knowledge.start()
        if telegram is not None:
            await telegram.start()
        await quality.start(anger_model=settings.load_knowledge)
        try:
            yield
        finally:
            await quality.stop()
            await web_chat.close_all()
            if telegram is not None:
                await telegram.stop()
            await knowledge.stop()
            await rasa.aclose()
            if order_system is not None:
                await order_system.aclose()
            await redis.aclose()

    app = FastAPI(title="kefu", version="0.1.0", lifespan=lifespan,
                  description="E-commerce customer-service bot with human handoff")
    app.include_router(api.create_router(gateway, readiness, access=access, limiter=limiter,
                                         limits=limits, serving=serving))
    app.include_router(knowledge_api.create_router(knowledge.service,
                                                   handoff.agents.authenticate))
    async def canned_answers(text: str) -> list[CannedAnswer]:
        found = await knowledge.service.search_async(text)
        return [CannedAnswer(entry_id=c.entry_id, question=c.question, answer=c.answer,
                             score=c.score) for c in found]

    photo_fetchers = _photo_fetchers(web_photos, telegram)
    app.include_router(handoff_api.create_router(handoff, knowledge_search=canned_answers,
                                                 photos=photo_fetchers))
    services = actions.Services(knowledge=knowledge_client, conversations=conversations,
                                handoff=handoff, redis=redis, orders=order_system,
                                work_orders=work_orders, proactive=proactive)
    app.include_router(actions.create_router(actions.build_executor(services), action_secret))
    app.include_router(orders_api.create_router(order_system, handoff.agents.authenticate))
    app.include_router(workorders_api.create_router(
        work_orders, handoff.agents.authenticate, photos=photo_fetchers))
    app.include_router(proactive_api.create_router(proactive.templates,
                                                   handoff.agents.authenticate))
    app.include_router(proactive_webhook.create_router(
        proactive_webhook.OrderEventHandler(redis, proactive),
        _optional(order_settings().webhook_secret),
        tolerance=order_settings().webhook_tolerance_seconds))
    app.include_router(admin_api.create_router(AdminService(knowledge, redis),
                                               handoff.agents.authenticate))
    app.include_router(web_chat.create_router())
    app.include_router(photos.create_router(
        web_photos, AttachmentDesk(gateway, conversations, handoff), conversations,
        access=access, limiter=limiter, limits=limits))
    app.include_router(quality.router(handoff.agents.authenticate))
    app.include_router(metrics.create_router(redis))
    app.add_middleware(metrics.TimingMiddleware)
    if telegram is not None:
        app.include_router(telegram.create_router())
    app.mount("/static", StaticFiles(directory=WIDGET_DIR), name="static")
    install_error_handlers(app)
    app.add_middleware(RequestLimits, default=settings.body_limit_bytes, limits=[
        (admin_api.PREFIX, UPLOAD_BODY_LIMIT), (actions.ACTIONS_PREFIX, ACTION_CALL_BODY_LIMIT),
        (photos.PREFIX, settings.web_photo_max_bytes)])
    if settings.web_origins:  # outside RequestLimits, so a 413 reaches the store's page too
        app.add_middleware(photos.CrossOriginPhotos, origins=settings.web_origins)
    app.state.gateway = gateway
    app.state.web_chat = web_chat
    app.state.telegram = telegram
    app.state.handoff = handoff
    app.state.knowledge = knowledge
    app.state.conversations = conversations
    app.state.quality = quality
    return app


def _secret(value: SecretStr | None, name: str) -> str:
    """The configured secret, or (development, unset) one nobody knows: closed, never open."""
    if value is not None:
        return value.get_secret_value()
    logger.warning("%s is not set: using a random one, so what it guards stays closed "
                   "(run `make setup` to generate the shared secrets into .env)", name)
    return secrets.token_urlsafe(32)


def _photo_fetchers(web: photos.PhotoStore, telegram: TelegramChannel | None,
                    ) -> dict[str, workorders_api.PhotoFetcher]:
    """How the console's photo routes (work orders, tickets) get a photo, per channel it came by."""
    fetchers: dict[str, workorders_api.PhotoFetcher] = {"web": web.fetch}
    if telegram is not None:
        fetchers["telegram"] = telegram.photo
    return fetchers


def _optional(value: SecretStr | None) -> str | None:
    """A configured secret's value; ``None`` when unset (what it guards stays closed)."""
    return value.get_secret_value() if value is not None else None


def _prefetching(settings: BotSettings) -> bool:
    """Whether messages are embedded on arrival: this process answers the knowledge decisions."""
    return settings.load_knowledge and knowledge_settings().prefetch_query_vectors
