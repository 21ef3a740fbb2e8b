"""Order questions through the whole stack: Rasa (NLU + rules) → the gateway's order actions →
the HTTP adapter → the demo order service ``make run`` starts, under supervisord.

"我的订单 <demo order> 到哪了" is verified first (the phone's last four digits typed in chat), then
answered with its status and latest tracking; a stranger's digits get nothing; English too, and
through the shopper API with the conversation's token.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from kefu.stack import StackConfig
from orders import demo_data as demo
from tests.e2e.conftest import SHOP_API_KEY, RestChat

pytestmark = [pytest.mark.rasa, pytest.mark.redis, pytest.mark.model, pytest.mark.slow]


def texts(replies: list[dict[str, Any]]) -> str:
    return "\n".join(str(r.get("text") or "") for r in replies)


def parse(stack: StackConfig, text: str) -> str:
    result = httpx.post(f"{stack.rasa_url}/model/parse", json={"text": text},
                        params={"token": stack.rasa_token}, timeout=30).raise_for_status().json()
    return str(result["intent"]["name"])


def test_where_is_my_order_verified_then_tracked(stack: StackConfig, chat: RestChat) -> None:
    asked = texts(chat.say(f"我的订单 {demo.SHIPPED} 到哪了"))
    assert "…2345" in asked and "后四位" in asked
    assert "顺丰" not in asked and "派送" not in asked  # nothing before verification
    told = texts(chat.say("8000"))
    assert f"订单 {demo.SHIPPED}（轻跑运动鞋 42码，¥399.00）：已发货。" in told
    assert "顺丰速运 运单号 SF1420938475612" in told
    assert "上海浦东新区 快件正在派送中" in told.splitlines()[2]  # the newest scan first
    again = texts(chat.say("那这个订单现在到哪了"))  # verified: no second question
    assert "SF1420938475612" in again and "后四位" not in again


def test_the_number_asked_for_and_a_strangers_digits(stack: StackConfig, chat: RestChat) -> None:
    assert "订单号" in texts(chat.say("我的订单到哪了"))
    asked = texts(chat.say(demo.OTHERS))  # the number the bot asked for is looked up
    assert "…0077" in asked and "后四位" in asked
    wrong = texts(chat.say("尾号8000"))
    assert "还可以再试 2 次" in wrong and "手机壳" not in wrong and "SF9900112233" not in wrong


def test_english_delayed_order(stack: StackConfig, chat: RestChat) -> None:
    asked = texts(chat.say(f"where is my order {demo.DELAYED}"))
    assert "last 4 digits" in asked
    told = texts(chat.say("my phone ends in 8000"))
    assert "paid, waiting to ship" in told and "past the promised shipping date" in told


def test_through_the_shopper_api_with_the_conversation_token(stack: StackConfig) -> None:
    url = f"{stack.gateway_url}/api/v1/messages"
    with httpx.Client(timeout=60) as client:
        first = client.post(url, json={"sender": "orders-e2e", "text": f"订单{demo.GIFT_PENDING}的赠品发了吗"})
        body = first.raise_for_status().json()
        assert "后四位" in body["messages"][0]["text"]
        token = body["conversation_token"]
        told = client.post(url, json={"sender": "orders-e2e", "text": "后四位是8000"},
                           headers={"Authorization": f"Bearer {token}"}).raise_for_status().json()
        said = "\n".join(m["text"] for m in told["messages"])
        assert "赠品「保温杯（满减赠品）」：还未发出。" in said and told["mode"] == "bot"


@pytest.mark.parametrize(("text", "intent"), [
    ("我的订单 2026112012345 到哪了", "ask_order_status"),
    ("where is my order 2026111800022", "ask_order_status"),
    ("帮我查下订单2026110500044的退款", "ask_order_status"),
    ("8000", "give_phone_tail"),
    ("手机尾号是 1234", "give_phone_tail"),
    ("2026112012345", "give_order_number"),
    ("下单后多久发货", "ask_question"),  # shipping in general stays the knowledge base's
    ("我要登记赠品", "register_gift"),
    ("我的工单进度", "ask_work_order_progress"),
    ("退订", "unsubscribe"),
    ("stop sending me messages", "unsubscribe"),
    ("退货怎么退", "ask_question"),  # 退 is not 退订
])
def test_nlu_routes_order_questions(stack: StackConfig, text: str, intent: str) -> None:
    assert parse(stack, text) == intent


def test_the_stores_logged_in_account_needs_no_digits(stack: StackConfig) -> None:
    """A store's backend (channel API key) vouches for its logged-in shopper's account."""
    url = f"{stack.gateway_url}/api/v1/messages"
    shop = {"Authorization": f"Bearer {SHOP_API_KEY}"}
    question = f"我的订单 {demo.SHIPPED} 到哪了"
    with httpx.Client(timeout=60) as client:
        owner = client.post(url, headers=shop, json={
            "sender": "acct-owner", "channel": "api", "text": question,
            "store_account": demo.SHOPPER}).raise_for_status().json()
        assert "SF1420938475612" in owner["messages"][0]["text"]
        other = client.post(url, headers=shop, json={
            "sender": "acct-other", "channel": "api", "text": question,
            "store_account": "other-shopper"}).raise_for_status().json()
        assert "后四位" in other["messages"][0]["text"]
        # a web shopper cannot claim an account for themselves
        claimed = client.post(url, json={"sender": "acct-web", "text": question,
                                         "store_account": demo.SHOPPER})
        assert claimed.status_code == 422 and claimed.json()["field"] == "store_account"
