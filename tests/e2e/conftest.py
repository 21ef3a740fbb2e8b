"""The whole kefu stack, started once per test session on free ports.

Real processes with the wiring of ``make run`` (:func:`kefu.stack.run_stack`, under supervisord):
redis-server, the gateway (knowledge service with the prepared embedding model and the demo store,
Rasa's custom actions), the lease sweeper and the Rasa server with the model trained from this
checkout. Every simulated shopper comes from 127.0.0.1, so the per-address rate limit is off;
the per-conversation one stays.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, async_playwright

from bot.rasa.training import train_if_changed
from handoff.service import HandoffService
from handoff.settings import HandoffSettings
from kefu.accounts import Presence
from kefu.conversation import ConversationStore
from kefu.redis import async_client
from kefu.stack import METERED, StackConfig, StackError, run_stack
from tests.helpers.e5_model import e5_model_dir
from tests.helpers.processes import free_port

LOG_TAIL_CHARS = 3000
SHOP_API_KEY = "e2e-shop-key-0123456789abcdef"  # a store backend's channel API key
ORDER_WEBHOOK_SECRET = "e2e-order-webhook-secret"  # the store signs its order events


@pytest.fixture(scope="session")
def rasa_model(repo_root: Path) -> Path:
    """The Rasa model of this checkout (trained only if ``make train`` has not done it)."""
    if not (repo_root / ".venv-rasa" / "bin" / "rasa").exists():
        pytest.fail("the Rasa venv is missing: run `make setup`")
    return train_if_changed(repo_root, repo_root / "models")


def _log_tails(logs: Path) -> str:
    parts = []
    for log in sorted(logs.glob("*.log")):
        parts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-LOG_TAIL_CHARS:]}")
    return "\n".join(parts)


@pytest.fixture(scope="session")
def stack(rasa_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackConfig]:
    """Every process of kefu, ready (the gateway's /readyz says Redis, Rasa and knowledge are)."""
    state = tmp_path_factory.mktemp("stack")
    config = StackConfig(
        state_dir=state, redis_port=free_port(), rasa_port=free_port(),
        gateway_port=free_port(), rasa_token="e2e-token", action_secret="e2e-action-secret",
        metrics_ports={name: free_port() for name in METERED},
        extra_env={"KEFU_EMBEDDING_MODEL": str(e5_model_dir(tmp_path_factory)),
                   "KEFU_ADDRESS_RATE_PER_MINUTE": "0",
                   "KEFU_ORDERS_POLL_SECONDS": "1",  # proactive order messages: poll often
                   "KEFU_ORDERS_WEBHOOK_SECRET": ORDER_WEBHOOK_SECRET,
                   "KEFU_CHANNEL_API_KEYS": f'{{"e2e-shop": "{SHOP_API_KEY}"}}'},
    )
    try:
        with run_stack(config, model=rasa_model) as running:
            yield running
    except StackError as exc:
        pytest.fail(f"{exc}\n{_log_tails(state / 'logs')}")


class RestChat:
    """A shopper talking to Rasa's REST channel the way the gateway does."""

    def __init__(self, stack: StackConfig, sender: str, channel: str = "web") -> None:
        self._url = f"{stack.rasa_url}/webhooks/rest/webhook"
        self.sender = sender
        self.channel = channel

    def say(self, text: str, *, original: str | None = None) -> list[dict[str, Any]]:
        """Send one message; Rasa's replies (text, buttons)."""
        body = {"sender": self.sender, "message": text,
                "metadata": {"channel": self.channel, "original_text": original or text}}
        response = httpx.post(self._url, json=body, timeout=60)
        response.raise_for_status()
        replies: list[dict[str, Any]] = response.json()
        return replies


@pytest.fixture
def chat(stack: StackConfig, request: pytest.FixtureRequest) -> RestChat:
    """A fresh conversation per test (the sender id is the test's name)."""
    return RestChat(stack, f"web:{request.node.name}")


def _presence(stack: StackConfig, *, online: str | None) -> None:
    """Everyone offline, then ``online`` (a new agent of every group) at the console."""
    async def go() -> None:
        redis = async_client(stack.redis_url)
        try:
            service = HandoffService(redis, ConversationStore(redis),
                                     HandoffSettings(bcrypt_rounds=4))
            for agent in await service.agents.all():
                await service.agents.set_presence(agent.username, Presence.OFFLINE)
            if online is not None:
                await service.agents.add(online, "e2e-online-password",
                                         list(service.settings.groups), display_name="在线客服")
                await service.agents.set_presence(online, Presence.ONLINE)
        finally:
            await redis.aclose()

    asyncio.run(go())


@pytest.fixture
def someone_online(stack: StackConfig) -> str:
    """An agent of every group at the console, so a handoff reaches a person now."""
    username = f"online-{uuid.uuid4().hex[:8]}"
    _presence(stack, online=username)
    return username


@pytest.fixture
def nobody_online(stack: StackConfig) -> None:
    """No agent of any group online (those of earlier tests included)."""
    _presence(stack, online=None)


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@dataclass(frozen=True)
class ConsoleAgent:
    """An agent account in the stack's Redis, serving every skill group."""

    username: str
    password: str
    display_name: str

    async def log_in(self, page: Page, gateway_url: str) -> None:
        """Open the console on ``page`` and log in as this agent."""
        await page.goto(f"{gateway_url}/console/")
        await page.get_by_test_id("login-username").fill(self.username)
        await page.get_by_test_id("login-password").fill(self.password)
        await page.get_by_test_id("login-submit").click()


@pytest.fixture
async def console_agent(stack: StackConfig) -> ConsoleAgent:
    """A fresh agent, created with the handoff service's agent store (as `kefu agent add` does)."""
    redis = async_client(stack.redis_url)
    try:
        service = HandoffService(redis, ConversationStore(redis), HandoffSettings(bcrypt_rounds=4))
        agent = ConsoleAgent(f"agent-{uuid.uuid4().hex[:8]}", "e2e-密码-password", "小李")
        await service.agents.add(agent.username, agent.password, list(service.settings.groups),
                                 display_name=agent.display_name)
        return agent
    finally:
        await redis.aclose()


@pytest.fixture
async def browser_page() -> AsyncIterator[Page]:
    """A page of Debian's Chromium (zh-CN, desktop size)."""
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = await browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900})
        yield await context.new_page()
        await browser.close()


# Questions that fit several entries of the demo store (care of shoes, clothing and down; returns;
# sizes; invoices). Which of them the decision model is unsure enough about to clarify is its call
# (it is refitted on the dev sets); flows that need a clarification use the first one it clarifies.
AMBIGUOUS = ("运动鞋可以机洗吗😅", "能机洗吗😅", "洗衣机能洗吗", "可以机洗吗", "这个能水洗吗", "怎么洗",
             "退货", "尺码", "鞋码怎么选", "怎么退", "多久到", "优惠", "尺码怎么选", "退换", "发票")


def clarified(gateway_url: str) -> tuple[str, list[str]]:
    """The first of `AMBIGUOUS` the gateway's knowledge service clarifies, with its options."""
    for text in AMBIGUOUS:
        decision = httpx.post(f"{gateway_url}/api/v1/knowledge/decide", json={"text": text},
                              timeout=30).json()
        if decision["kind"] == "clarify":
            return text, [o["entry_id"] for o in decision["options"]]
    pytest.fail(f"the knowledge service clarifies none of {AMBIGUOUS}")


def clarified_on_two_topics(gateway_url: str) -> tuple[tuple[str, list[str]], tuple[str, list[str]]]:
    """Two of `AMBIGUOUS` the gateway clarifies with no option in common: two topics."""
    first: tuple[str, list[str]] | None = None
    for text in AMBIGUOUS:
        decision = httpx.post(f"{gateway_url}/api/v1/knowledge/decide", json={"text": text},
                              timeout=30).json()
        if decision["kind"] != "clarify":
            continue
        options = [o["entry_id"] for o in decision["options"]]
        if first is None:
            first = (text, options)
        elif set(options).isdisjoint(first[1]):
            return first, (text, options)
    pytest.fail(f"the knowledge service clarifies no two topics among {AMBIGUOUS}")
