"""Rasa (REST channel + custom actions) faked at its HTTP edge for channel tests.

Plug it into the real :class:`bot.gateway.rasa_client.RasaClient` with ``httpx.MockTransport``. Replies
are keyword-canned like the demo shop's bot: answers with "was this helpful?" buttons, a
clarification with ``/choose_option`` buttons (one with an entry id too long for Telegram's
64-byte callback data), a very long answer, markup that must stay text, and ``/request_human``
opening a ticket through the real handoff service, as ``action_handoff`` does.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, NamedTuple

import httpx
import redis.asyncio as aioredis

from bot.gateway import Gateway
from bot.gateway.rasa_client import RasaClient
from handoff.models import HandoffReason
from handoff.service import HandoffService
from handoff.settings import HandoffSettings
from kefu.conversation import ConversationStore

LONG_ENTRY_ID = "apparel-size-chart-" + "x" * 60
FEEDBACK_BUTTONS = [{"title": "有帮助 👍", "payload": "/feedback_helpful"},
                    {"title": "没帮助", "payload": "/feedback_not_helpful"}]
RETURN_ANSWER = "签收后7天内，商品不影响二次销售即可申请无理由退货，在订单页点“申请售后”。"
RETURN_ANSWER_EN = "You can return items within 7 days of delivery if they are unused."
ANSWERS = {"shoe-size": "鞋码偏小半码，建议选大一码。", LONG_ENTRY_ID: "衣服尺码请参考商品页的尺码表。"}
CLARIFY_TEXT = "您想问的是下面哪一个？"
HANDOFF_TEXT = "好的，正在为您转接人工客服，请稍候。"
DEFAULT_TEXT = "抱歉，我没有理解您的意思，可以换个说法吗？"
LONG_ANSWER = "\n\n".join(f"第{i}条：" + "运费险理赔说明。" * 60 for i in range(1, 21))
MARKUP_ANSWER = '<img src=x onerror="window.__kefu_xss=1"><b>粗体</b> & <script>x()</script>'


class FakeRasa:
    """What Rasa would answer, keyed by words; records every message that reached it."""

    def __init__(self, handoff: HandoffService | None = None, delay: float = 0.0) -> None:
        self.handoff = handoff
        self.delay = delay
        self.received: list[dict[str, Any]] = []
        self.down = False

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    def messages(self) -> list[str]:
        """The ``message`` of every request, in order."""
        return [str(r["message"]) for r in self.received]

    async def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        body = json.loads(request.content)
        self.received.append(body)
        if self.delay:
            await asyncio.sleep(self.delay)
        replies = await self._reply(str(body["sender"]), str(body["message"]))
        return httpx.Response(200, json=[{"recipient_id": body["sender"], **r} for r in replies])

    async def _reply(self, sender: str, text: str) -> list[dict[str, Any]]:
        lowered = text.lower()
        if text == "/greet":
            return [{"text": "您好！我是智能客服小助手，请问有什么可以帮您？"}]
        if text == "/request_human":
            if self.handoff is not None:
                await self.handoff.request_handoff(sender, reason=HandoffReason.EXPLICIT_REQUEST,
                                                   channel=sender.split(":", 1)[0])
            return [{"text": HANDOFF_TEXT}]
        if text.startswith("/choose_option"):
            entry = json.loads(text.removeprefix("/choose_option"))["entry_id"]
            return [{"text": ANSWERS.get(entry, DEFAULT_TEXT), "buttons": FEEDBACK_BUTTONS}]
        if text in ("/feedback_helpful", "/feedback_not_helpful"):
            return [{"text": "感谢您的反馈！"}]
        if "退货" in text:
            return [{"text": RETURN_ANSWER, "buttons": FEEDBACK_BUTTONS}]
        if "return" in lowered:
            return [{"text": RETURN_ANSWER_EN, "buttons": FEEDBACK_BUTTONS}]
        if "尺码" in text or "size" in lowered:
            return [{"text": CLARIFY_TEXT, "buttons": [
                {"title": "鞋码怎么选", "payload": '/choose_option{"entry_id":"shoe-size"}'},
                {"title": "衣服尺码表", "payload": f'/choose_option{{"entry_id":"{LONG_ENTRY_ID}"}}'},
            ]}]
        if "运费险" in text:
            return [{"text": LONG_ANSWER}]
        if "html" in lowered:
            return [{"text": MARKUP_ANSWER}]
        return [{"text": DEFAULT_TEXT}]


class FakedRasa(NamedTuple):
    """A real gateway, conversation store and handoff service on Redis, Rasa faked."""

    conversations: ConversationStore
    handoff: HandoffService
    rasa: FakeRasa
    gateway: Gateway
    client: RasaClient  # closed by the test's teardown


def gateway_on_fake_rasa(redis: aioredis.Redis) -> FakedRasa:
    """The gateway the channel tests put their channel in front of."""
    conversations = ConversationStore(redis)
    handoff = HandoffService(redis, conversations, HandoffSettings(bcrypt_rounds=4))
    rasa = FakeRasa(handoff)
    client = RasaClient("http://rasa", "token", transport=rasa.transport())
    return FakedRasa(conversations, handoff, rasa, Gateway(client, conversations, handoff), client)
