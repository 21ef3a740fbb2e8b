"""Agent accounts: who may log in to the console, the knowledge admin and the supervisor pages.

Accounts (bcrypt), sessions that expire, roles, presence and skill groups. They live below every
package that needs them: handoff serves tickets to agents, the knowledge admin lets managers
publish; both check the same session tokens here.

Passwords are pre-hashed with SHA-256 before bcrypt so long passphrases are not cut at bcrypt's
72 bytes. Session tokens are random; Redis keeps only their SHA-256 (``session_key``) with an idle
TTL renewed on every use. Presence is a field of the agent hash plus, while online, a last-seen
score in each group's ``online_key`` sorted set, so "is anyone of this group online" is one ZCOUNT.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol, cast

import bcrypt
import redis.asyncio as aioredis
from pydantic import BaseModel

from kefu.errors import AgentExists, AgentNotFound, InvalidAccount, NotAuthenticated
from kefu.keys import agent_key, agents_key, online_key, session_key


class AgentRole(StrEnum):
    """What an agent may do."""

    AGENT = "agent"  # serves tickets of their skill groups
    MANAGER = "manager"  # serves and reassigns tickets of every group; publishes knowledge


class Presence(StrEnum):
    """Whether an agent takes new tickets."""

    ONLINE = "online"  # at the console, counted for queue estimates and offline detection
    AWAY = "away"  # logged in but not taking new tickets
    OFFLINE = "offline"  # logged out or gone


class Agent(BaseModel):
    """A console user (no secrets: the password hash stays in Redis)."""

    username: str
    display_name: str
    groups: list[str]
    role: AgentRole = AgentRole.AGENT
    presence: Presence = Presence.OFFLINE
    disabled: bool = False  # may not log in; sessions end at their next request
    created_at: datetime

    def serves(self, group: str) -> bool:
        """True when the agent may see and take tickets of ``group``."""
        return self.role is AgentRole.MANAGER or group in self.groups


class AccountPolicy(Protocol):
    """The settings accounts follow (`handoff.settings.HandoffSettings` has them)."""

    @property
    def groups(self) -> list[str]:
        """The skill groups an agent may belong to."""

    @property
    def bcrypt_rounds(self) -> int:
        """Cost of a password hash."""

    @property
    def session_ttl_seconds(self) -> int:
        """Idle seconds before a session lapses."""

    @property
    def presence_ttl_seconds(self) -> float:
        """How long an "online" agent may go unseen before counting as gone."""


_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_DUMMY_HASH = bcrypt.hashpw(b"kefu-timing-equaliser", bcrypt.gensalt(4))


def _prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())


def hash_password(password: str, rounds: int = 12) -> str:
    """A bcrypt hash of ``password`` (SHA-256 pre-hashed)."""
    return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds)).decode("ascii")


def check_password(password: str, hashed: str) -> bool:
    """True when ``password`` matches a :func:`hash_password` hash."""
    return bcrypt.checkpw(_prehash(password), hashed.encode("ascii"))


def _token_sha(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class AgentDirectory:
    """Creates agents, checks passwords, issues and checks session tokens, tracks presence."""

    def __init__(self, redis: aioredis.Redis, settings: AccountPolicy) -> None:
        self._redis = redis
        self._settings = settings

    # --- accounts ------------------------------------------------------------------------------

    async def add(self, username: str, password: str, groups: list[str], *,
                  role: AgentRole = AgentRole.AGENT, display_name: str | None = None) -> Agent:
        """Create an agent; fails with :class:`AgentExists` if the username is taken."""
        if not _USERNAME.match(username):
            raise InvalidAccount("username: letters, digits, _ . - (max 64)", field="username")
        if len(password) < 8:
            raise InvalidAccount("password must have at least 8 characters", field="password")
        groups = self.check_groups(groups)
        hashed = await asyncio.to_thread(hash_password, password, self._settings.bcrypt_rounds)
        agent = Agent(username=username, display_name=display_name or username, groups=groups,
                      role=role, created_at=datetime.now(UTC))
        key = agent_key(username)
        if not await self._redis.hsetnx(key, "username", username):
            raise AgentExists(f"agent {username!r} already exists", username=username)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={
                "password_hash": hashed, "display_name": agent.display_name,
                "groups": ",".join(groups), "role": role.value,
                "presence": Presence.OFFLINE.value, "created_at": agent.created_at.isoformat(),
            })
            pipe.sadd(agents_key(), username)
            await pipe.execute()
        return agent

    async def set_password(self, username: str, password: str) -> None:
        """Replace an agent's password."""
        await self.get(username)
        if len(password) < 8:
            raise InvalidAccount("password must have at least 8 characters", field="password")
        hashed = await asyncio.to_thread(hash_password, password, self._settings.bcrypt_rounds)
        await self._redis.hset(agent_key(username), "password_hash", hashed)

    async def set_disabled(self, username: str, disabled: bool) -> Agent:
        """Disable an account (it can no longer log in, its sessions stop working) or enable it.

        A disabled agent goes offline at once, so no new chat waits for them; tickets they held
        go back to their queue when the lease lapses.
        """
        await self.get(username)
        await self._redis.hset(agent_key(username), "disabled", "1" if disabled else "0")
        if disabled:
            await self.set_presence(username, Presence.OFFLINE)
        return await self.get(username)

    async def remove(self, username: str) -> None:
        """Delete an account for good: its sessions stop working at their next request."""
        agent = await self.get(username)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(agent_key(username))
            pipe.srem(agents_key(), username)
            for group in agent.groups:
                pipe.zrem(online_key(group), username)
            await pipe.execute()

    def check_groups(self, groups: list[str]) -> list[str]:
        """``groups`` without blanks and duplicates; fails on a group that is not configured."""
        cleaned = list(dict.fromkeys(g.strip() for g in groups if g.strip()))
        unknown = [g for g in cleaned if g not in self._settings.groups]
        if unknown or not cleaned:
            raise InvalidAccount(f"groups must be among {self._settings.groups}", field="groups")
        return cleaned

    async def get(self, username: str) -> Agent:
        """The agent, with presence downgraded to offline when it went stale."""
        fields = cast(dict[str, str], await self._redis.hgetall(agent_key(username)))
        if "password_hash" not in fields:
            raise AgentNotFound(f"no agent {username!r}", username=username)
        return self._agent(username, fields)

    async def all(self) -> list[Agent]:
        """Every agent, sorted by username."""
        names = sorted(cast(set[str], await self._redis.smembers(agents_key())))
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(agent_key(name))
            rows: list[dict[str, str]] = await pipe.execute()
        return [self._agent(n, f) for n, f in zip(names, rows, strict=True) if "password_hash" in f]

    def _agent(self, username: str, fields: dict[str, str]) -> Agent:
        presence = Presence(fields.get("presence", Presence.OFFLINE.value))
        seen = float(fields.get("last_seen", "0"))
        stale = time.time() - seen > self._settings.presence_ttl_seconds
        if presence is not Presence.OFFLINE and stale:
            presence = Presence.OFFLINE
        return Agent(
            username=username, display_name=fields.get("display_name") or username,
            groups=[g for g in fields.get("groups", "").split(",") if g],
            role=AgentRole(fields.get("role", AgentRole.AGENT.value)), presence=presence,
            disabled=fields.get("disabled") == "1",
            created_at=datetime.fromisoformat(fields["created_at"]),
        )

    # --- sessions ------------------------------------------------------------------------------

    async def login(self, username: str, password: str) -> tuple[str, Agent]:
        """Check the password and open a session; the agent comes online."""
        stored, disabled = cast(list[str | None], await self._redis.hmget(
            agent_key(username), ["password_hash", "disabled"]))
        ok = await asyncio.to_thread(check_password, password, stored or _DUMMY_HASH.decode())
        if stored is None or not ok:
            raise NotAuthenticated("wrong username or password")
        if disabled == "1":
            raise NotAuthenticated("this account is disabled")
        token = secrets.token_urlsafe(32)
        await self._redis.set(session_key(_token_sha(token)), username,
                              ex=self._settings.session_ttl_seconds)
        await self.set_presence(username, Presence.ONLINE)
        return token, await self.get(username)

    async def authenticate(self, token: str) -> Agent:
        """The agent of a live session token (renewing its idle TTL); else NotAuthenticated."""
        if not token:
            raise NotAuthenticated("missing session token")
        username = cast(str | None, await self._redis.getex(
            session_key(_token_sha(token)), ex=self._settings.session_ttl_seconds))
        if username is None:
            raise NotAuthenticated("session expired or unknown; log in again")
        try:
            agent = await self.get(username)
        except AgentNotFound as exc:
            raise NotAuthenticated("agent no longer exists") from exc
        if agent.disabled:
            raise NotAuthenticated("this account is disabled")
        return agent

    async def logout(self, token: str, username: str) -> None:
        """End the session and take the agent offline."""
        await self._redis.delete(session_key(_token_sha(token)))
        await self.set_presence(username, Presence.OFFLINE)

    # --- presence ------------------------------------------------------------------------------

    async def set_presence(self, username: str, presence: Presence) -> Agent:
        """Go online (taking new tickets), away or offline."""
        agent = await self.get(username)
        now = time.time()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(agent_key(username),
                      mapping={"presence": presence.value, "last_seen": str(now)})
            for group in agent.groups:
                if presence is Presence.ONLINE:
                    pipe.zadd(online_key(group), {username: now})
                else:
                    pipe.zrem(online_key(group), username)
            await pipe.execute()
        return agent.model_copy(update={"presence": presence})

    async def touch(self, username: str) -> None:
        """The agent's console is alive: keep their stored presence fresh.

        An online agent whose console slept comes back online.
        """
        key = agent_key(username)
        row = await self._redis.hmget(key, ["presence", "groups"])
        stored, groups = cast(list[str | None], row)
        if stored is None:
            return
        now = time.time()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, "last_seen", str(now))
            if stored == Presence.ONLINE.value:
                for group in (groups or "").split(","):
                    if group:
                        pipe.zadd(online_key(group), {username: now})
            await pipe.execute()

    async def online_count(self, group: str) -> int:
        """How many agents of ``group`` are online and were seen recently."""
        since = time.time() - self._settings.presence_ttl_seconds
        count: int = await self._redis.zcount(online_key(group), since, "+inf")
        return count
