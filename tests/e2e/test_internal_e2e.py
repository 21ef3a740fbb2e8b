"""Internal services stay internal on the real stack, and personal numbers stay out of its records.

Rasa (HTTP API on) and the gateway listen on 127.0.0.1 only; Rasa's API needs its token; a
shopper's phone number reaches neither a process log nor the escalation stream.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest

from kefu.keys import kb_escalations_key
from kefu.redis import async_client
from kefu.stack import StackConfig

pytestmark = [pytest.mark.rasa, pytest.mark.model, pytest.mark.slow]

PHONE = "13812345678"


def listening(port: int) -> set[str]:
    """The local addresses something LISTENs on ``port`` (Linux /proc/net/tcp, IPv4)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def other_addresses() -> list[str]:
    """This host's addresses other than loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: just picks the outward address
            outward = probe.getsockname()[0]
        except OSError:
            return []
    return [outward] if not outward.startswith("127.") else []


def test_rasa_and_the_gateway_listen_on_loopback_only(stack: StackConfig) -> None:
    for port in (stack.rasa_port, stack.gateway_port):
        assert listening(port) == {"127.0.0.1"}, port
    for address in other_addresses():
        for port in (stack.rasa_port, stack.gateway_port):
            with pytest.raises(OSError), socket.create_connection((address, port), timeout=2):
                pass


def test_rasa_s_api_needs_its_token(stack: StackConfig) -> None:
    url = f"{stack.rasa_url}/conversations/web:someone/tracker"
    for params in ({}, {"token": "change-me"}, {"token": stack.rasa_token[:-1]}):
        assert httpx.get(url, params=params, timeout=30).status_code in (401, 403)
    assert httpx.get(url, params={"token": stack.rasa_token}, timeout=30).status_code == 200


async def test_a_phone_number_reaches_neither_a_log_nor_the_escalations(
        stack: StackConfig) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60) as http:
        reply = await http.post("/api/v1/messages", json={
            "sender": "privacy-e2e", "text": f"我的手机号是{PHONE}，能帮我用它充话费吗"})
        assert reply.status_code == 200
    redis = async_client(stack.redis_url)
    try:
        await asyncio.sleep(0.5)
        stream = await redis.xrange(kb_escalations_key())
        mine = [f for _, f in stream if f.get("conversation") == "web:privacy-e2e"]
        assert mine and all(PHONE not in f["text"] and "138****5678" in f["text"] for f in mine)
    finally:
        await redis.aclose()
    for log in stack.logs.glob("*.log"):
        assert PHONE not in log.read_text(errors="replace"), log.name
