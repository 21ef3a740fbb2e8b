"""Order questions and proactive messages on the demo store, through the whole stack.

1. **Answered without a person**: every demo order asked about in 7 phrasings (5 Chinese, 2
   English), each a new shopper on ``POST /api/v1/messages``: the question, then the phone's last
   four digits when asked. Answered = the bot disclosed the order (its full number with its
   status) and no ticket was opened; the share is over every question asked.
2. **Event → message latency**: N fresh paid orders in the demo order system, each verified by
   its own shopper; then each misses its promised shipping date (written to the demo's SQLite,
   as the store's system would record it) and the time until the proactive message is in the
   shopper's conversation (``GET /api/v1/conversations/{sender}/messages``) is measured. The
   stack's poller looks every ``--poll`` seconds (``KEFU_ORDERS_POLL_SECONDS``; 30 by default
   under ``make run``), which bounds the latency.
3. **Event → message latency through the webhook**: N more fresh orders, verified the same way;
   each then misses its date and the store posts a signed event for it
   (``POST /api/v1/orders/events``); measured from the post to the message in the shopper's
   conversation. Counted as the webhook's only when its answer says it told the shopper (the
   poller, reading the same records, could come first); the post's own time is reported too.

Starts the stack on free ports. Writes ``benchmarks/results/order_service.json``.

    .venv/bin/python benchmarks/order_service.py [--n 20] [--poll 1] [--skip-questions]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import socket
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from kefu.stack import StackConfig, run_stack
from orders import demo_data as demo
from orders.demo import DemoOrders
from orders.models import Item, Order, OrderStatus
from orders.proactive_webhook import PATH as WEBHOOK
from orders.proactive_webhook import sign

ROOT = Path(__file__).resolve().parents[1]
PHRASINGS = ["我的订单 {id} 到哪了", "订单{id}什么时候发货", "帮我查一下订单 {id} 的物流",
             "{id} 这个订单退款到账了吗", "订单 {id} 的赠品发了吗", "where is my order {id}",
             "has order {id} shipped"]
PHONE = {demo.OTHERS: "1234"}
WEBHOOK_SECRET = secrets.token_urlsafe(24)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Shopper:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.sender = f"bench-{uuid.uuid4().hex[:10]}"
        self.token: str | None = None

    async def say(self, text: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = await self.client.post("/api/v1/messages", headers=headers,
                                          json={"sender": self.sender, "text": text})
        body: dict[str, Any] = response.raise_for_status().json()
        self.token = body.get("conversation_token") or self.token
        return body

    async def messages(self) -> list[dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = await self.client.get(f"/api/v1/conversations/{self.sender}/messages",
                                         headers=headers)
        found: list[dict[str, Any]] = response.raise_for_status().json()["messages"]
        return found


def _text(body: dict[str, Any]) -> str:
    return "\n".join(str(m.get("text") or "") for m in body["messages"])


async def ask(client: httpx.AsyncClient, order_id: str, phrasing: str) -> dict[str, Any]:
    shopper = Shopper(client)
    body = await shopper.say(phrasing.format(id=order_id))
    turns = 1
    if "后四位" in _text(body) or "last 4 digits" in _text(body):
        body = await shopper.say(PHONE.get(order_id, "8000"))
        turns += 1
    said = _text(body)
    answered = body["mode"] == "bot" and (f"订单 {order_id}（" in said
                                          or f"Order {order_id} (" in said)
    return {"order": order_id, "question": phrasing.format(id=order_id), "answered": answered,
            "turns": turns, "reply": said[:80]}


def fresh_orders(n: int, now: datetime, prefix: str = "20261201") -> list[Order]:
    return [Order(order_id=f"{prefix}{i:05d}", shopper_id=demo.SHOPPER,
                  buyer_phone_masked=demo.PHONE, status=OrderStatus.PAID,
                  placed_at=now - timedelta(hours=2),
                  items=[Item(sku="BENCH", name="基准测试商品", quantity=1, unit_price="10.00")],
                  total="10.00", paid="10.00", ship_by=now + timedelta(days=1))
            for i in range(n)]


async def latency(client: httpx.AsyncClient, db: Path, n: int) -> list[float]:
    store = DemoOrders(db)
    base = [o for o in (store.get(i) for i in
                        [o.order_id for o in demo.demo_orders(datetime.now(UTC))]) if o]
    orders = fresh_orders(n, datetime.now(UTC))
    store.replace_all([*base, *orders])
    shoppers = []
    for order in orders:
        shopper = Shopper(client)
        await shopper.say(f"我的订单 {order.order_id} 到哪了")
        await shopper.say("8000")
        shoppers.append(shopper)
    late = [o.model_copy(update={"ship_by": datetime.now(UTC) - timedelta(minutes=1)})
            for o in orders]
    started = time.monotonic()
    store.replace_all([*base, *late])
    store.close()
    waits: dict[str, float] = {}
    while len(waits) < n and time.monotonic() - started < 120:
        for shopper, order in zip(shoppers, orders, strict=True):
            if order.order_id in waits:
                continue
            if any("【订单提醒】" in str(m.get("text")) for m in await shopper.messages()):
                waits[order.order_id] = time.monotonic() - started
        await asyncio.sleep(0.05)
    return sorted(waits.values())


async def webhook_latency(client: httpx.AsyncClient, db: Path,
                          n: int) -> tuple[list[float], list[float]]:
    """Per order: (post → message seen, post answered), for the events the webhook told."""
    store = DemoOrders(db)
    known = [o.order_id for o in demo.demo_orders(datetime.now(UTC))]
    known += [o.order_id for o in fresh_orders(n, datetime.now(UTC))]  # the poller's phase
    orders = fresh_orders(n, datetime.now(UTC), prefix="20261202")
    current = {o.order_id: o for o in [*(store.get(i) for i in known), *orders] if o}
    store.replace_all(current.values())
    shoppers = []
    for order in orders:
        shopper = Shopper(client)
        await shopper.say(f"我的订单 {order.order_id} 到哪了")
        await shopper.say("8000")
        shoppers.append(shopper)
    seen: list[float] = []
    answered: list[float] = []
    for shopper, order in zip(shoppers, orders, strict=True):
        current[order.order_id] = order.model_copy(
            update={"ship_by": datetime.now(UTC) - timedelta(minutes=1)})
        store.replace_all(current.values())
        body = json.dumps({"event_id": f"bench-{uuid.uuid4().hex}",
                           "order_id": order.order_id}).encode()
        stamp = str(int(time.time()))
        started = time.monotonic()
        response = await client.post(WEBHOOK, content=body, headers={
            "Content-Type": "application/json", "X-Kefu-Timestamp": stamp,
            "X-Kefu-Signature": sign(WEBHOOK_SECRET, stamp, body)})
        posted = time.monotonic() - started
        if response.raise_for_status().json()["told"] != 1:
            continue  # the poller told it first
        while time.monotonic() - started < 30:
            if any("【订单提醒】" in str(m.get("text")) for m in await shopper.messages()):
                seen.append(time.monotonic() - started)
                answered.append(posted)
                break
            await asyncio.sleep(0.005)
    store.close()
    return sorted(seen), sorted(answered)


def _figures(prefix: str, seconds: list[float]) -> dict[str, float | None]:
    ms = sorted(w * 1000 for w in seconds)
    return {
        f"{prefix}p50_ms": round(statistics.median(ms), 1) if ms else None,
        f"{prefix}p95_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.95))], 1) if ms else None,
        f"{prefix}max_ms": round(ms[-1], 1) if ms else None,
    }


async def run(gateway: str, db: Path, n: int, questions: bool = True) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=gateway, timeout=60) as client:
        ids = [o.order_id for o in demo.demo_orders(datetime.now(UTC))]
        asked = [await ask(client, i, p) for i in ids for p in PHRASINGS] if questions else []
        waits = await latency(client, db, n)
        seen, posted = await webhook_latency(client, db, n)
    answered = [a for a in asked if a["answered"]]
    return {
        "questions": len(asked), "answered_without_a_person": len(answered),
        "share": round(len(answered) / len(asked), 3) if asked else None,
        "not_answered": [a for a in asked if not a["answered"]],
        "events": n, "delivered": len(waits), **_figures("latency_", waits),
        "webhook_events": n, "webhook_told": len(seen), **_figures("webhook_latency_", seen),
        **_figures("webhook_answer_", posted),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--poll", type=float, default=1.0)
    parser.add_argument("--skip-questions", action="store_true",
                        help="only the latencies (the questions take minutes)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        config = StackConfig(state_dir=state, redis_port=free_port(), rasa_port=free_port(),
                             gateway_port=free_port(), rasa_token=secrets.token_urlsafe(24),
                             action_secret=secrets.token_urlsafe(24),
                             extra_env={"KEFU_ORDERS_POLL_SECONDS": str(args.poll),
                                        "KEFU_ORDERS_WEBHOOK_SECRET": WEBHOOK_SECRET,
                                        "KEFU_ADDRESS_RATE_PER_MINUTE": "0",
                                        "KEFU_SENDER_RATE_PER_MINUTE": "0"})
        with run_stack(config):
            result = asyncio.run(run(config.gateway_url, state / "orders" / "demo.sqlite", args.n,
                                     questions=not args.skip_questions))
    result["poll_seconds"] = args.poll
    name = "order_service_latency.json" if args.skip_questions else "order_service.json"
    out = ROOT / "benchmarks" / "results" / name
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    print(f"order questions answered without a person: {result['answered_without_a_person']}/"
          f"{result['questions']} ({result['share']}); event → message (poll "
          f"{args.poll:g} s): p50 {result['latency_p50_ms']} ms, p95 {result['latency_p95_ms']} "
          f"ms, max {result['latency_max_ms']} ms over {result['delivered']}/{result['events']}; "
          f"webhook: p50 {result['webhook_latency_p50_ms']} ms, p95 "
          f"{result['webhook_latency_p95_ms']} ms, max {result['webhook_latency_max_ms']} ms "
          f"(post answered p50 {result['webhook_answer_p50_ms']} ms) over "
          f"{result['webhook_told']}/{result['webhook_events']}")


if __name__ == "__main__":
    main()
