"""Two gateways and two Rasa servers on one Redis serve one conversation between them.

All of a conversation's state is in Redis (transcript, Rasa's tracker and lock, slots, tickets),
so whichever gateway a load balancer picks, and whichever Rasa server that gateway talks to, the
conversation goes on where it was. Here every message of one conversation alternates between two
complete gateway + Rasa pairs (each gateway serving its Rasa's actions), through bot answers, a
clarification chosen on the other pair, a handoff, the agent's reply and the return to the bot;
then the transcript must hold every message exactly once, in order.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as sync_redis

from handoff.service import HandoffService
from handoff.settings import HandoffSettings
from kefu.accounts import Presence
from kefu.conversation import ConversationStore, Role, Turn
from kefu.keys import RASA_TRACKER_PREFIX
from kefu.redis import async_client
from kefu.stack import StackConfig, StackError, run_stack
from knowledge.loader import load_kb
from knowledge.settings import DEMO_STORE_PATH
from knowledge.text import normalize
from tests.e2e.conftest import _log_tails, clarified
from tests.helpers.e5_model import e5_model_dir
from tests.helpers.processes import free_port, redis_server

pytestmark = [pytest.mark.rasa, pytest.mark.redis, pytest.mark.model, pytest.mark.slow]

PASSWORD = "scale-密码-password"


@pytest.fixture(scope="module")
def pairs(rasa_model: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[str], str]]:
    """Base URLs of two gateways, each with its own Rasa server, and their one Redis."""
    state = tmp_path_factory.mktemp("scale")
    model_dir = str(e5_model_dir(tmp_path_factory))
    with redis_server(state / "redis") as (redis_port, _proc):
        configs = [StackConfig(state_dir=state / name, redis_port=redis_port,
                               rasa_port=free_port(), gateway_port=free_port(),
                               rasa_token="scale-token", action_secret="scale-secret",
                               start_redis=False,
                               extra_env={"KEFU_EMBEDDING_MODEL": model_dir})
                   for name in ("a", "b")]
        try:
            with run_stack(configs[0], model=rasa_model), run_stack(configs[1], model=rasa_model):
                yield [c.gateway_url for c in configs], configs[0].redis_url
        except StackError as exc:
            pytest.fail(f"{exc}\n" + "\n".join(_log_tails(state / n / "logs") for n in "ab"))


class Shopper:
    """One conversation; each message goes to the next gateway in turn."""

    def __init__(self, gateways: list[str]) -> None:
        self.gateways = gateways
        self.sender = f"scale-{uuid.uuid4().hex[:8]}"
        self.sent = 0
        self.last_id: str | None = None
        self.received: list[str] = []  # ids of every message the shopper got, in order
        self.token: str | None = None  # from the first reply; any gateway accepts it

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def say(self, text: str) -> dict[str, Any]:
        gateway = self.gateways[self.sent % len(self.gateways)]
        self.sent += 1
        response = httpx.post(f"{gateway}/api/v1/messages", headers=self._auth(),
                              json={"sender": self.sender, "text": text}, timeout=60)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        self.token = body.get("conversation_token") or self.token
        self._got(body["messages"])
        return body

    def poll(self) -> list[dict[str, Any]]:
        """What was sent since the last message seen, asked of the next gateway in turn."""
        gateway = self.gateways[self.sent % len(self.gateways)]
        self.sent += 1
        params = {"after": self.last_id} if self.last_id else {}
        response = httpx.get(f"{gateway}/api/v1/conversations/{self.sender}/messages",
                             params=params, headers=self._auth(), timeout=30)
        response.raise_for_status()
        messages: list[dict[str, Any]] = response.json()["messages"]
        self._got(messages)
        return messages

    def _got(self, messages: list[dict[str, Any]]) -> None:
        self.received += [m["id"] for m in messages]
        if messages:
            self.last_id = messages[-1]["id"]


def add_agent(redis: str) -> str:
    """An agent of every group, at the console: the bot then moves a shopper at once."""
    async def add() -> str:
        client = async_client(redis)
        try:
            service = HandoffService(client, ConversationStore(client),
                                     HandoffSettings(bcrypt_rounds=4))
            name = f"agent-{uuid.uuid4().hex[:6]}"
            await service.agents.add(name, PASSWORD, list(service.settings.groups))
            await service.agents.set_presence(name, Presence.ONLINE)
            return name
        finally:
            await client.aclose()

    return asyncio.run(add())


def transcript(redis: str, conversation: str) -> list[Turn]:
    async def read() -> list[Turn]:
        client = async_client(redis)
        try:
            return await ConversationStore(client).transcript(conversation)
        finally:
            await client.aclose()

    return asyncio.run(read())


def rasa_user_texts(redis: str, conversation: str) -> list[str]:
    """Texts of the user events in Rasa's stored tracker (bot/rasa/stores.py: a list)."""
    client = sync_redis.Redis.from_url(redis, decode_responses=True)
    try:
        events = [json.loads(e) for e in client.lrange(f"{RASA_TRACKER_PREFIX}{conversation}",
                                                        0, -1)]
    finally:
        client.close()
    return [str(e["text"]) for e in events if e["event"] == "user"]


def test_one_conversation_alternating_between_two_gateways_and_two_rasas(
        pairs: tuple[list[str], str]) -> None:
    gateways, redis = pairs
    demo = load_kb(DEMO_STORE_PATH)
    question, options = clarified(gateways[1])
    shopper = Shopper(gateways)

    greeted = shopper.say("你好")  # pair a
    assert greeted["mode"] == "bot" and len(greeted["messages"]) == 1

    [clarify] = shopper.say(question)["messages"]  # pair b: remembers the options
    payloads = [b["payload"] for b in clarify["buttons"]]
    position = len(options) - 1  # the last option: the choice, not the ranking, decides
    assert payloads[position] == f'/choose_option{{"entry_id":"{options[position]}"}}'
    ordinal = ["第一个", "第二个", "第三个"][position]
    [chosen] = shopper.say(ordinal)["messages"]  # pair a reads the options pair b's Rasa stored
    entry = demo.entry(options[position])
    assert entry is not None and chosen["text"] == entry.answer

    agent = add_agent(redis)  # someone online: with nobody, the bot would ask first
    handed = shopper.say("转人工")  # pair b opens the ticket
    assert handed["mode"] == "handoff"
    waiting = shopper.say("我的订单还没到，麻烦帮我看看")  # pair a: into the ticket, not to Rasa
    assert waiting == {"messages": [], "mode": "handoff"}

    with httpx.Client(timeout=30) as http:
        login = http.post(f"{gateways[1]}/api/v1/agent/login",
                          json={"username": agent, "password": PASSWORD}).json()
        auth = {"Authorization": f"Bearer {login['token']}"}
        [ticket] = [t for t in http.get(f"{gateways[0]}/api/v1/tickets", headers=auth).json()
                    if t["conversation_id"] == f"web:{shopper.sender}"]
        assert http.post(f"{gateways[0]}/api/v1/tickets/{ticket['id']}/claim",
                         headers=auth).status_code == 200
        assert http.post(f"{gateways[1]}/api/v1/tickets/{ticket['id']}/messages",
                         json={"text": "您好，我来帮您查一下"}, headers=auth).status_code == 201
        agent_said = shopper.poll()  # from the other gateway than the agent wrote on
        assert [m["text"] for m in agent_said if m["text"] == "您好，我来帮您查一下"] == \
            ["您好，我来帮您查一下"]
        assert shopper.poll() == []  # nothing twice
        resolved = http.post(f"{gateways[0]}/api/v1/tickets/{ticket['id']}/resolve",
                             json={"note": "查过了", "return_to_bot": True}, headers=auth)
        assert resolved.status_code == 200

    back = shopper.say("谢谢")  # the bot answers again, on whichever pair
    assert back["mode"] == "bot" and back["messages"]

    conversation = f"web:{shopper.sender}"
    turns = transcript(redis, conversation)
    said = [t.text for t in turns if t.role is Role.SHOPPER]
    assert said == ["你好", question, ordinal, "转人工", "我的订单还没到，麻烦帮我看看",
                    "谢谢"]
    assert [t.text for t in turns if t.role is Role.AGENT] == ["您好，我来帮您查一下"]
    bot = [t.text for t in turns if t.role is Role.BOT]
    assert bot.count(entry.answer) == 1 and bot.count(clarify["text"]) == 1
    # every message the shopper got is in the record once, and the shopper got none twice
    assert len(shopper.received) == len(set(shopper.received))
    assert set(shopper.received) <= {t.id for t in turns if t.role is not Role.SHOPPER}
    # both Rasa servers wrote to the one tracker: every bot-mode message once, in order, and
    # the human part of the conversation handed back on resolve
    assert rasa_user_texts(redis, conversation) == [
        normalize("你好"), normalize(question), ordinal, normalize("转人工"),
        "我的订单还没到，麻烦帮我看看", normalize("谢谢")]
