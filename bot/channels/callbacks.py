"""Button payloads as Telegram ``callback_data``, which holds at most 64 bytes.

Short payloads (``/feedback_helpful``, ``/rate{"score":5}``) travel as they are. A longer one
(a clarification ``/choose_option{"entry_id":"…"}`` with a long entry id) is stored in Redis
under a token derived from its hash and travels as ``#`` + token; the same payload always gets
the same token, so re-sending a keyboard costs one idempotent write.
"""

from __future__ import annotations

import hashlib

import redis.asyncio as aioredis

from kefu.keys import gw_callback_key

CALLBACK_DATA_LIMIT = 64
TOKEN_MARK = "#"
TOKEN_TTL_SECONDS = 30 * 24 * 3600


class CallbackCodec:
    """Maps button payloads to ``callback_data`` and back."""

    def __init__(self, redis: aioredis.Redis, ttl_seconds: int = TOKEN_TTL_SECONDS) -> None:
        self._redis = redis
        self._ttl = ttl_seconds

    async def encode(self, payload: str) -> str:
        """The ``callback_data`` for a payload (stored when it is too long to travel itself)."""
        if len(payload.encode()) <= CALLBACK_DATA_LIMIT and not payload.startswith(TOKEN_MARK):
            return payload
        token = hashlib.sha256(payload.encode()).hexdigest()[:24]
        await self._redis.set(gw_callback_key(token), payload, ex=self._ttl)
        return TOKEN_MARK + token

    async def decode(self, data: str) -> str | None:
        """The payload behind ``callback_data``; None when its stored payload expired."""
        if not data.startswith(TOKEN_MARK):
            return data
        payload = await self._redis.get(gw_callback_key(data[len(TOKEN_MARK):]))
        return str(payload) if payload is not None else None
