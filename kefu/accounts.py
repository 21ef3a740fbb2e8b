"""Agent accounts: who may log in to the console, the knowledge admin and the supervisor pages.

Accounts (bcrypt), sessions that expire, roles, presence and skill groups. They live below every
package that needs them: handoff serves tickets to agents, the knowledge admin lets managers
publish; both check the same session tokens here.

Passwords are pre-hashed with SHA-256 before bcrypt so long passphrases are not cut at bcrypt's
72 bytes. Session tokens are random; Redis keeps only their SHA-256 (``session_key``) with an idle
TTL renewed on every use, and the time the session began: past ``session_max_seconds`` it ends
however busy it was, and a password change ends every session begun before it (the agent hash
keeps ``sessions_after``). Failed logins are throttled per account and per client address
(:class:`kefu.limits.FailureThrottle`): past the limit every attempt is refused for a while, the
right password included. Presence is a field of the agent hash plus, while online, a last-seen
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
from kefu.limits import FailureThrottle


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
    def session_max_seconds(self) -> int:
        """Seconds after login when a session ends however active it was."""

    @property
    def login_failures_per_account(self) -> int:
        """Failed logins of one account within the window before it is refused (0: no limit)."""

    @property
    def login_failures_per_address(self) -> int:
        """Failed logins from one client address within the window before it is refused."""

    @property
    def login_failure_window_seconds(self) -> int:
        """How long failed logins count (and a throttled account or address waits)."""

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
        window = settings.login_failure_window_seconds
        self._account_failures = FailureThrottle(
            redis, limit=settings.login_failures_per_account, window_seconds=window)
        self._address_failures = FailureThrottle(
            redis, limit=settings.login_failures_per_address, window_seconds=window)

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
        await self._redis.hset(agent_key(username), mapping={
            "password_hash": hashed, "sessions_after": repr(time.time())})

    async def revoke_sessions(self, username: str) -> None:
        """End every session of the agent begun before now (they log in again)."""
        await self.get(username)
        await self._redis.hset(agent_key(username), "sessions_after", repr(time.time()))

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

    async def login(self, username: str, password: str,
                    client: str | None = None) -> tuple[str, Agent]:
        """Check the password and open a session; the agent comes online.

        ``client`` is the caller's address: failures are throttled per account and per address.
        """
        await self._account_failures.check("account", username)
        if client:
            await self._address_failures.check("address", client)
        stored, disabled = cast(list[str | None], await self._redis.hmget(
            agent_key(username), ["password_hash", "disabled"]))
        ok = await asyncio.to_thread(check_password, password, stored or _DUMMY_HASH.decode())
        if stored is None or not ok:
            await self._account_failures.failed("account", username)
            if client:
                await self._address_failures.failed("address", client)
            raise NotAuthenticated("wrong username or password")
        if disabled == "1":
            raise NotAuthenticated("this account is disabled")
        await self._account_failures.forget("account", username)
        token = secrets.token_urlsafe(32)
        await self._redis.set(session_key(_token_sha(token)), f"{username}|{time.time()!r}",
                              ex=self._settings.session_ttl_seconds)
        await self.set_presence(username, Presence.ONLINE)
        return token, await self.get(username)

    async def authenticate(self, token: str) -> Agent:
        """The agent of a live session token (renewing its idle TTL); else NotAuthenticated.

        A session ends when idle too long, ``session_max_seconds`` after it began, or when the
        agent's sessions were revoked (a password change) after it began.
        """
        if not token:
            raise NotAuthenticated("missing session token")
        key = session_key(_token_sha(token))
        value = cast(str | None, await self._redis.getex(
            key, ex=self._settings.session_ttl_seconds))
        if value is None:
            raise NotAuthenticated("session expired or unknown; log in again")
        username, _, began = value.partition("|")
        fields = cast(dict[str, str], await self._redis.hgetall(agent_key(username)))
        if "password_hash" not in fields:
            raise NotAuthenticated("agent no longer exists")
        started = float(began or 0)
        too_old = time.time() - started > self._settings.session_max_seconds
        if too_old or started < float(fields.get("sessions_after") or 0):
            await self._redis.delete(key)
            raise NotAuthenticated("session ended; log in again")
        agent = self._agent(username, fields)
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
