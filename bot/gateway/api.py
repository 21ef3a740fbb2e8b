"""Shopper-facing HTTP routes: send a message, read what was sent since, health and readiness.

Every call for a conversation shows who is calling (:mod:`bot.gateway.identity`): the first
message of a new conversation gets its ``conversation_token``, later calls send it as
``Authorization: Bearer <token>`` (or an integration's channel API key). Each client address and
each conversation has a rate limit shared by every gateway (:mod:`kefu.limits`): past it the
call is refused with 429 before any work is done, so a flooder slows only itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field

from bot.gateway import Gateway, Mode, OutMessage, Reply
from bot.gateway.errors import InvalidMessage
from bot.gateway.identity import ShopperAccess
from bot.gateway.service import RETRY_AFTER_SECONDS, RETRYING_TEXT
from kefu.conversation import conversation_id
from kefu.http import BEARER
from kefu.limits import Rate, RateLimiter
from kefu.redis import RedisUnavailable

ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]
ServingCheck = Callable[[dict[str, bool]], bool]


class MessageIn(BaseModel):
    """Body of ``POST /api/v1/messages``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    sender: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@-]+$",
                        description="the shopper's chat id on the channel")
    text: str = Field(min_length=1, max_length=2000,
                      description="what the shopper typed, or a button payload")
    channel: Literal["web", "api"] = "web"
    display_name: str | None = Field(default=None, max_length=64)
    store_account: str | None = Field(
        default=None, min_length=1, max_length=64,
        description="the store account the store's own app has logged in (api channel with a "
                    "channel API key only): its orders are told without asking for the phone")


class MessagesOut(BaseModel):
    """Body of ``GET /api/v1/conversations/{sender}/messages``."""

    messages: list[OutMessage]


@dataclass(frozen=True)
class ShopperLimits:
    """Rate limits of the shopper routes (:class:`kefu.limits.Rate` each)."""

    per_sender: Rate
    per_address: Rate


def client_address(request: Request) -> str:
    """The caller's address (uvicorn puts a trusted proxy's ``X-Forwarded-For`` there)."""
    return request.client.host if request.client else "unknown"


def create_router(gateway: Gateway, readiness: ReadinessCheck, *, access: ShopperAccess,
                  limiter: RateLimiter, limits: ShopperLimits,
                  serving: ServingCheck | None = None) -> APIRouter:
    """Routes that only translate HTTP to :class:`Gateway` calls."""
    router = APIRouter()
    shopper_errors: dict[int | str, dict[str, str]] = {
        401: {"description": "this conversation needs its token"},
        403: {"description": "not this conversation's token"},
        429: {"description": "too many messages; Retry-After says when to send again"}}

    @router.post("/api/v1/messages", response_model=Reply, tags=["shopper"],
                 response_model_exclude_none=True, responses=shopper_errors)
    async def post_message(
        body: MessageIn, request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> Reply:
        """Send a shopper message; the bot's replies, or none while a human owns the chat.

        The first message of a new conversation answers its `conversation_token`.
        """
        await limiter.take("address", client_address(request), limits.per_address)
        conv = conversation_id(body.channel, body.sender)
        try:
            granted = await access.admit(body.channel, conv, _bearer(credentials),
                                         may_start=True)
        except RedisUnavailable:  # nothing kept: the client sends it again
            return Reply(messages=[OutMessage(text=RETRYING_TEXT)], mode=Mode.BOT,
                         retry_after=RETRY_AFTER_SECONDS)
        await limiter.take("sender", conv, limits.per_sender)
        if body.store_account is not None and granted.integration is None:
            raise InvalidMessage("only an integration with a channel API key vouches for a "
                                 "store account", field="store_account")
        reply = await gateway.handle(body.channel, body.sender, body.text,
                                     display_name=body.display_name,
                                     store_account=body.store_account)
        if granted.issued_token:
            reply.conversation_token = granted.issued_token
        return reply

    @router.get("/api/v1/conversations/{sender}/messages", response_model=MessagesOut,
                tags=["shopper"], responses=shopper_errors)
    async def get_messages(
        sender: str, request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
        after: str | None = Query(default=None, max_length=64),
        channel: Literal["web", "api"] = "web",
    ) -> MessagesOut:
        """Bot and agent messages sent to the shopper after the message id ``after``."""
        await limiter.take("address", client_address(request), limits.per_address)
        await access.admit(channel, conversation_id(channel, sender), _bearer(credentials),
                           may_start=False)
        return MessagesOut(messages=await gateway.messages_after(channel, sender, after))

    @router.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @router.get("/readyz", tags=["ops"])
    async def readyz(response: Response,
                     mode: Literal["all", "serving"] = "all") -> dict[str, object]:
        """Readiness of every part (Redis, Rasa, knowledge, actions, the lease sweeper).

        ``mode=serving`` (for a load balancer): ready while this gateway can answer shoppers,
        Rasa or the sweeper down included (it then answers without Rasa).
        """
        checks = await readiness()
        ready = all(checks.values())
        can_serve = serving(checks) if serving is not None else ready
        response.status_code = 200 if (ready if mode == "all" else can_serve) else 503
        return {"ready": ready, "serving": can_serve, "checks": checks,
                "degraded": sorted(name for name, ok in checks.items() if not ok)}

    return router


def _bearer(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    return credentials.credentials if credentials is not None else None
