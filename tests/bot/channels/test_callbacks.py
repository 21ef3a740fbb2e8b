"""Button payloads as Telegram callback_data (64 bytes at most)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from bot.channels.callbacks import CallbackCodec
from kefu.redis import async_client

pytestmark = pytest.mark.redis


@pytest.fixture
async def codec(redis_url: str) -> AsyncIterator[CallbackCodec]:
    client: aioredis.Redis = async_client(redis_url)
    yield CallbackCodec(client)
    await client.aclose()


async def test_short_payloads_travel_as_they_are(codec: CallbackCodec) -> None:
    assert await codec.encode('/rate{"score":5}') == '/rate{"score":5}'
    assert await codec.decode("/feedback_helpful") == "/feedback_helpful"


async def test_long_payloads_travel_as_a_stable_token(codec: CallbackCodec) -> None:
    payload = '/choose_option{"entry_id":"退货-运费险-理赔流程-超长的知识条目编号-2024"}'
    assert len(payload.encode()) > 64
    data = await codec.encode(payload)
    assert data.startswith("#") and len(data.encode()) <= 64
    assert await codec.encode(payload) == data
    assert await codec.decode(data) == payload


async def test_expired_or_forged_tokens_decode_to_none(codec: CallbackCodec) -> None:
    assert await codec.decode("#0123456789abcdef01234567") is None


async def test_a_short_payload_that_looks_like_a_token_is_stored(codec: CallbackCodec) -> None:
    data = await codec.encode("#not-a-token")
    assert data != "#not-a-token" and await codec.decode(data) == "#not-a-token"
