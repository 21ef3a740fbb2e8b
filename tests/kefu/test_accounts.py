from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from redis.asyncio import Redis

from kefu.accounts import AgentDirectory, AgentRole, Presence, check_password, hash_password
from kefu.errors import (
    AgentExists,
    AgentNotFound,
    InvalidAccount,
    NotAuthenticated,
    TooManyRequests,
)

pytestmark = pytest.mark.redis

PASSWORD = "s3cret-密码-pw"


@dataclass
class Policy:
    """What `AgentDirectory` reads of the handoff settings, with a cheap bcrypt."""

    groups: list[str] = field(default_factory=lambda: ["presale", "aftersale", "logistics"])
    bcrypt_rounds: int = 4
    session_ttl_seconds: int = 3600
    session_max_seconds: int = 24 * 3600
    presence_ttl_seconds: float = 60.0
    login_failures_per_account: int = 10
    login_failures_per_address: int = 50
    login_failure_window_seconds: int = 900


@pytest.fixture
def agents(redis: Redis) -> AgentDirectory:
    return AgentDirectory(redis, Policy())


def test_passwords_are_bcrypt_hashed_and_long_ones_are_not_cut() -> None:
    long_a, long_b = "x" * 80 + "a", "x" * 80 + "b"
    hashed = hash_password(long_a, rounds=4)
    assert hashed.startswith("$2b$04$") and long_a not in hashed
    assert check_password(long_a, hashed)
    assert not check_password(long_b, hashed)  # plain bcrypt would cut both at 72 bytes


async def test_add_get_list(agents: AgentDirectory) -> None:
    added = await agents.add("li", PASSWORD, ["presale", " aftersale", "presale"],
                             role=AgentRole.MANAGER, display_name="小李")
    assert added.groups == ["presale", "aftersale"] and added.role is AgentRole.MANAGER
    with pytest.raises(AgentExists):
        await agents.add("li", PASSWORD, ["presale"])
    with pytest.raises(InvalidAccount):
        await agents.add("wang", PASSWORD, ["kitchen"])
    with pytest.raises(InvalidAccount):
        await agents.add("wang", "short", ["presale"])
    with pytest.raises(InvalidAccount):
        await agents.add("bad name!", PASSWORD, ["presale"])
    with pytest.raises(AgentNotFound):
        await agents.get("nobody")
    await agents.add("an", PASSWORD, ["logistics"])
    assert [a.username for a in await agents.all()] == ["an", "li"]
    assert (await agents.get("li")).display_name == "小李"


async def test_sessions_expire_and_logout(redis: Redis) -> None:
    short = AgentDirectory(redis, Policy(session_ttl_seconds=1))
    await short.add("s", PASSWORD, ["presale"])
    with pytest.raises(NotAuthenticated):
        await short.login("s", "wrong-password")
    token, agent = await short.login("s", PASSWORD)
    assert agent.presence is Presence.ONLINE
    assert (await short.authenticate(token)).username == "s"
    await asyncio.sleep(1.2)
    with pytest.raises(NotAuthenticated):
        await short.authenticate(token)
    token, _ = await short.login("s", PASSWORD)
    await short.logout(token, "s")
    with pytest.raises(NotAuthenticated):
        await short.authenticate(token)
    assert (await short.get("s")).presence is Presence.OFFLINE
    with pytest.raises(NotAuthenticated):
        await short.authenticate("")


async def test_password_change(agents: AgentDirectory) -> None:
    await agents.add("p", PASSWORD, ["presale"])
    await agents.set_password("p", "another-密码-123")
    with pytest.raises(NotAuthenticated):
        await agents.login("p", PASSWORD)
    token, _ = await agents.login("p", "another-密码-123")
    assert token


async def test_presence_counts_only_fresh_online_agents(redis: Redis) -> None:
    stale = AgentDirectory(redis, Policy(presence_ttl_seconds=0.5))
    await stale.add("a", PASSWORD, ["presale", "logistics"])
    await stale.add("b", PASSWORD, ["presale"])
    assert await stale.online_count("presale") == 0
    await stale.set_presence("a", Presence.ONLINE)
    await stale.set_presence("b", Presence.ONLINE)
    assert await stale.online_count("presale") == 2
    assert await stale.online_count("logistics") == 1
    await stale.set_presence("b", Presence.AWAY)
    assert await stale.online_count("presale") == 1
    assert (await stale.get("b")).presence is Presence.AWAY
    await asyncio.sleep(0.7)  # a's console went quiet
    assert await stale.online_count("presale") == 0
    assert (await stale.get("a")).presence is Presence.OFFLINE
    await stale.touch("a")  # and came back
    assert await stale.online_count("presale") == 1
    assert (await stale.get("a")).presence is Presence.ONLINE


# --- issue #11: login throttling, revocation on password change, absolute lifetime ---------------


async def test_wrong_passwords_lock_the_account_and_the_right_one_then_fails_too(
        agents: AgentDirectory) -> None:
    await agents.add("t", PASSWORD, ["presale"])
    for _ in range(10):
        with pytest.raises(NotAuthenticated):
            await agents.login("t", "guess-guess", client="203.0.113.9")
    with pytest.raises(TooManyRequests) as refused:
        await agents.login("t", PASSWORD, client="203.0.113.7")  # another address: still locked
    assert refused.value.status_code == 429 and 1 <= refused.value.retry_after <= 900
    assert refused.value.headers()["Retry-After"] == str(refused.value.retry_after)


async def test_one_address_guessing_many_accounts_is_throttled(redis: Redis) -> None:
    agents = AgentDirectory(redis, Policy(login_failures_per_address=5))
    await agents.add("victim", PASSWORD, ["presale"])
    for n in range(5):
        with pytest.raises(NotAuthenticated):
            await agents.login(f"user{n}", "guess-guess", client="198.51.100.1")
    with pytest.raises(TooManyRequests):
        await agents.login("victim", PASSWORD, client="198.51.100.1")
    token, _ = await agents.login("victim", PASSWORD, client="198.51.100.2")
    assert token


async def test_a_good_login_clears_the_account_s_failures(agents: AgentDirectory) -> None:
    await agents.add("c", PASSWORD, ["presale"])
    for _ in range(9):
        with pytest.raises(NotAuthenticated):
            await agents.login("c", "guess-guess")
    await agents.login("c", PASSWORD)
    for _ in range(9):
        with pytest.raises(NotAuthenticated):
            await agents.login("c", "guess-guess")
    assert await agents.login("c", PASSWORD)


async def test_a_password_change_ends_every_earlier_session(agents: AgentDirectory) -> None:
    await agents.add("r", PASSWORD, ["presale"])
    first, _ = await agents.login("r", PASSWORD)
    second, _ = await agents.login("r", PASSWORD)
    await asyncio.sleep(0.01)
    await agents.set_password("r", "another-密码-123")
    for token in (first, second):
        with pytest.raises(NotAuthenticated):
            await agents.authenticate(token)
    fresh, _ = await agents.login("r", "another-密码-123")
    assert (await agents.authenticate(fresh)).username == "r"


async def test_a_busy_session_still_ends_at_its_absolute_lifetime(redis: Redis) -> None:
    agents = AgentDirectory(redis, Policy(session_ttl_seconds=3600, session_max_seconds=1))
    await agents.add("b", PASSWORD, ["presale"])
    token, _ = await agents.login("b", PASSWORD)
    for _ in range(3):  # in use all the time: the idle TTL alone would renew it forever
        assert (await agents.authenticate(token)).username == "b"
        await asyncio.sleep(0.3)
    await asyncio.sleep(0.3)
    with pytest.raises(NotAuthenticated):
        await agents.authenticate(token)
