"""A Redis restart under the gateway: messages wait and are kept, stale connections heal.

Each test has a redis-server of its own (AOF on) that it kills and starts again on the same
port and data, as supervisord does; Rasa is faked at its HTTP edge.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.gateway import Gateway, Mode
from bot.gateway.rasa_client import RasaClient
from bot.gateway.service import RETRYING_TEXT
from handoff.service import HandoffService
from kefu.conversation import ConversationStore, Role
from kefu.redis import RedisUnavailable, async_client, patiently
from tests.helpers.processes import free_port, redis_server_binary, wait_for_port

pytestmark = [pytest.mark.redis, pytest.mark.slow]


class RestartableRedis:
    """A redis-server that can be killed and started again on the same port and data."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.data), "--appendonly", "yes", "--appendfsync", "no", "--save", ""]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, 10, self.proc)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RestartableRedis]:
    redis = RestartableRedis(tmp_path)
    redis.start()
    yield redis
    if redis.proc is not None and redis.proc.poll() is None:
        redis.kill()


def echo_rasa(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    return httpx.Response(200, json=[{"recipient_id": body["sender"],
                                      "text": f"echo:{body['message']}"}])


async def test_pooled_connections_survive_a_restart(server: RestartableRedis) -> None:
    client = async_client(server.url)
    try:
        await asyncio.gather(*(client.set(f"k{i}", str(i)) for i in range(20)))  # a full pool
        server.kill()
        server.start()
        await asyncio.sleep(2.5)  # past the health-check interval: every pooled one is stale
        assert await asyncio.gather(*(client.get(f"k{i}") for i in range(20))) == \
            [str(i) for i in range(20)]  # kept by the AOF, read on healed connections
        assert await client.incr("writes") == 1  # a write on a healed connection, once
    finally:
        await client.aclose()


async def test_patiently_waits_for_redis_to_come_back(server: RestartableRedis) -> None:
    client = async_client(server.url)
    try:
        server.kill()
        loop = asyncio.get_running_loop()
        loop.call_later(1.0, server.start)
        assert await patiently(lambda: client.set("after", "restart"), seconds=10) is True
        server.kill()
        with pytest.raises(RedisUnavailable):
            await patiently(lambda: client.get("after"), seconds=0.5)
    finally:
        await client.aclose()


async def test_a_message_sent_while_redis_restarts_waits_and_is_kept(
        server: RestartableRedis) -> None:
    redis = async_client(server.url)
    conversations = ConversationStore(redis)
    rasa = RasaClient("http://rasa", "token", transport=httpx.MockTransport(echo_rasa))
    gateway = Gateway(rasa, conversations, HandoffService(redis, conversations))
    try:
        await gateway.handle("web", "amy", "第一条")
        server.kill()
        asyncio.get_running_loop().call_later(1.5, server.start)
        reply = await gateway.handle("web", "amy", "重启时发的")
        assert reply.mode is Mode.BOT and [m.text for m in reply.messages] == ["echo:重启时发的"]
        turns = await conversations.transcript("web:amy")
        assert [(t.role, t.text) for t in turns] == [
            (Role.SHOPPER, "第一条"), (Role.BOT, "echo:第一条"),
            (Role.SHOPPER, "重启时发的"), (Role.BOT, "echo:重启时发的")]
    finally:
        await rasa.aclose()
        await redis.aclose()


async def test_redis_away_too_long_asks_to_resend_and_keeps_nothing_twice(
        server: RestartableRedis) -> None:
    redis = async_client(server.url)
    conversations = ConversationStore(redis)
    rasa = RasaClient("http://rasa", "token", transport=httpx.MockTransport(echo_rasa))
    gateway = Gateway(rasa, conversations, HandoffService(redis, conversations),
                      redis_wait_seconds=0.5)
    try:
        server.kill()
        reply = await gateway.handle("web", "bo", "没存上的")
        assert reply.mode is Mode.BOT and reply.retry_after is not None and reply.retry_after > 0
        assert [m.text for m in reply.messages] == [RETRYING_TEXT]
        server.start()
        await gateway.handle("web", "bo", "没存上的")  # the client sends it again
        turns = await conversations.transcript("web:bo")
        assert [t.text for t in turns] == ["没存上的", "echo:没存上的"]
    finally:
        await rasa.aclose()
        await redis.aclose()
