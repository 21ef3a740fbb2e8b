"""Nothing is lost when redis-server (AOF on) or a kefu process restarts mid-handoff."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis

from handoff.models import TicketStatus
from handoff.service import HandoffService
from kefu.accounts import Presence
from kefu.conversation import ConversationStore
from kefu.redis import async_client
from tests.handoff.conftest import PASSWORD, make_settings, open_ticket, seed_conversation
from tests.helpers.processes import free_port, redis_server

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _service(url: str) -> tuple[HandoffService, Redis]:
    redis = async_client(url)
    return HandoffService(redis, ConversationStore(redis), make_settings()), redis


async def test_tickets_survive_a_redis_restart(tmp_path: Path) -> None:
    port, data = free_port(), tmp_path / "redis"
    url = f"redis://127.0.0.1:{port}/0"
    with redis_server(data, port):
        before, client = _service(url)
        await before.agents.add("night", PASSWORD, ["presale"])
        agent = await before.agents.set_presence("night", Presence.ONLINE)
        await seed_conversation(before, "web:persist", category="presale")
        claimed = await open_ticket(before, "web:persist")
        waiting = await open_ticket(before, "web:second", group="presale")
        await before.claim(claimed.id, agent)
        await before.add_shopper_message("web:persist", "重启前的消息")
        token, _ = await before.agents.login("night", PASSWORD)
        await client.aclose()

    with redis_server(data, port):  # same directory: the AOF is replayed
        after, client = _service(url)  # and a fresh kefu process's service
        open_now = await after.open_ticket("web:persist")
        assert open_now is not None and open_now.id == claimed.id
        assert open_now.status is TicketStatus.CLAIMED and open_now.agent == "night"
        assert open_now.context.order_number == "E20240611001"
        assert [t.id for t in await after.list_tickets(TicketStatus.WAITING)] == [waiting.id]
        assert await after.queue_position(waiting.id) == 1
        assert (await after.agents.authenticate(token)).username == "night"
        texts = [t.text for t in await after.transcript(claimed.id)]
        assert texts[-1] == "重启前的消息"
        await after.heartbeat(claimed.id, agent)  # the console carries on
        await after.add_shopper_message("web:persist", "重启后的消息")
        closed = await after.resolve(claimed.id, agent, note="ok")
        assert closed.status is TicketStatus.RETURNED
        await client.aclose()
