"""Who may read and write a shopper's conversation: its shopper, or an integration with a key.

A ``sender`` name is not a secret (it shows up in links, logs, the console), so it cannot be what
lets someone read a conversation. The first message of a new conversation (HTTP, or the web
chat's hello) is answered with a **conversation token**; from then on every call for that
conversation (``POST /api/v1/messages``, ``GET /api/v1/conversations/{sender}/messages``, the
web chat) must show it as ``Authorization: Bearer <token>`` (the widget sends it in its hello
frame). Redis keeps only the token's SHA-256 (``gw_owner_key``), renewed on every use.

A conversation that has a transcript but no token (started before tokens existed, or whose token
lapsed) belongs to nobody who can prove it, so nobody may take it over: the client starts a new
one. A store's own backend, acting for many shoppers, uses a **channel API key** from the
settings (``KEFU_CHANNEL_API_KEYS``) instead, for conversations on the ``api`` channel only; a
leaked integration key never opens a widget shopper's chat.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

import redis.asyncio as aioredis

from bot.gateway.errors import ConversationForbidden
from kefu.errors import NotAuthenticated
from kefu.keys import conv_transcript_key, gw_owner_key
from kefu.redis import patiently

INTEGRATION_CHANNEL = "api"
"""The only channel an integration's API key may act on."""

OWNER_TTL_SECONDS = 30 * 24 * 3600
"""How long a conversation token stays valid after its last use."""

GREETING_TTL_SECONDS = 24 * 3600
"""A token issued to a web chat that has not written yet (a page view) lapses sooner."""

# KEYS: owner, transcript. ARGV: sha of the token shown ('' none), sha of a new token ('' may
# not start), ttl. Returns 1 (the owner), 2 (new conversation, new token stored),
# -1 (a token is needed), -2 (wrong token), -3 (someone's conversation without an owner).
# Sent again with the same new token (its answer was lost with Redis), it answers 2 again.
_ADMIT_LUA = """
local owner = redis.call('GET', KEYS[1])
if owner then
  if ARGV[1] ~= '' and owner == ARGV[1] then
    redis.call('EXPIRE', KEYS[1], ARGV[3])
    return 1
  end
  if ARGV[2] ~= '' and owner == ARGV[2] then return 2 end
  if ARGV[1] == '' then return -1 end
  return -2
end
if ARGV[1] ~= '' then return -2 end
if redis.call('EXISTS', KEYS[2]) == 1 then return -3 end
if ARGV[2] == '' then return -1 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 2
"""


@dataclass(frozen=True)
class Access:
    """Who is acting for a conversation."""

    conversation_id: str
    issued_token: str | None = None  # a new conversation's token, to hand to its shopper once
    integration: str | None = None  # the name of the channel API key used, if any


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class ShopperAccess:
    """Checks conversation tokens and channel API keys; issues a token to a new conversation."""

    def __init__(self, redis: aioredis.Redis, channel_keys: Mapping[str, str] | None = None,
                 *, ttl_seconds: int = OWNER_TTL_SECONDS, wait_seconds: float = 8.0) -> None:
        self._redis = redis
        self._wait = wait_seconds
        self._keys = {name: key.encode("utf-8") for name, key in (channel_keys or {}).items()}
        self._ttl = ttl_seconds
        self._admit = redis.register_script(_ADMIT_LUA)

    def integration_of(self, bearer: str | None) -> str | None:
        """The name of the channel API key ``bearer`` is, if it is one."""
        if not bearer:
            return None
        given = bearer.encode("utf-8")
        found = None
        for name, key in self._keys.items():  # compare with every key, in constant time each
            if hmac.compare_digest(given, key):
                found = name
        return found

    async def admit(self, channel: str, conversation: str, bearer: str | None, *,
                    may_start: bool, ttl_seconds: int | None = None) -> Access:
        """Let the holder of ``bearer`` act for ``conversation``, or raise.

        ``may_start``: a caller without a token may start the conversation when it is new (its
        first message, the web chat's hello); it then gets the token in ``issued_token``.

        Waits for Redis through a restart (:func:`kefu.redis.patiently`).

        Raises:
            NotAuthenticated: the conversation needs its token and none was shown (401).
            ConversationForbidden: the token is not this conversation's, or the conversation
                has no token anyone could show (403).
            RedisUnavailable: Redis stayed away longer than the wait.
        """
        integration = self.integration_of(bearer)
        if integration is not None:
            if channel != INTEGRATION_CHANNEL:
                raise ConversationForbidden(
                    f"a channel API key acts for '{INTEGRATION_CHANNEL}' conversations only",
                    conversation_id=conversation)
            return Access(conversation, integration=integration)
        new_token = secrets.token_urlsafe(32) if may_start and not bearer else None

        async def ask() -> int:  # the same new token each time: safe to send again
            return int(await self._admit(
                keys=[gw_owner_key(conversation), conv_transcript_key(conversation)],
                args=[_sha(bearer) if bearer else "", _sha(new_token) if new_token else "",
                      ttl_seconds or self._ttl]))

        outcome = await patiently(ask, seconds=self._wait, what=f"admitting {conversation}")
        if outcome == 1:
            return Access(conversation)
        if outcome == 2:
            return Access(conversation, issued_token=new_token)
        if outcome == -1:
            raise NotAuthenticated("this conversation needs its token: send "
                                   "'Authorization: Bearer <conversation_token>'")
        if outcome == -3:
            raise ConversationForbidden("this conversation has no token anyone can show; "
                                        "start a new one", conversation_id=conversation)
        raise ConversationForbidden("the token is not this conversation's",
                                    conversation_id=conversation)
