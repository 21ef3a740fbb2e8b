"""The lease sweeper as its own process: a lapsed claim is requeued with no gateway running."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from handoff.models import TicketStatus
from handoff.service import HandoffService
from handoff.sweeper import sweeper_alive
from tests.handoff.conftest import AgentFactory, make_settings, open_ticket
from tests.helpers.processes import free_port

pytestmark = [pytest.mark.redis, pytest.mark.slow]


async def test_the_sweeper_process_requeues_lapsed_claims_on_its_own(
        redis: aioredis.Redis, redis_url: str, service: HandoffService,
        make_agent: AgentFactory, repo_root: Path) -> None:
    short = HandoffService(redis, service.conversations, make_settings(lease_seconds=0.5))
    agent = await make_agent("gone", ["presale"])
    ticket = await open_ticket(short, "web:alone", group="presale")
    await short.claim(ticket.id, agent)  # and the agent's console vanishes; no gateway runs
    port = free_port()
    sweeper = subprocess.Popen(
        [sys.executable, "-m", "handoff.sweeper", "--interval", "0.2", "--redis-url", redis_url,
         "--metrics-port", str(port)],
        cwd=repo_root, env={**os.environ, "PYTHONPATH": str(repo_root)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        async with asyncio.timeout(30):
            while (await short.get(ticket.id)).status is not TicketStatus.WAITING:
                await asyncio.sleep(0.1)
            while not await sweeper_alive(redis):
                await asyncio.sleep(0.1)
        assert await short.queue_position(ticket.id) == 1
        async with httpx.AsyncClient() as http:  # its own /metrics, on loopback
            scraped = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        assert "kefu_sweeper_requeued_total 1.0" in scraped
        assert "kefu_sweeper_runs_total" in scraped
    finally:
        sweeper.send_signal(signal.SIGTERM)
        output = sweeper.communicate(timeout=20)[0].decode()
    assert sweeper.returncode == 0, output
    assert "requeued 1 ticket" in output and "lease sweeper stopped" in output
