"""The demo order service: the demo store's order system, an implementation of ``openapi.yaml``.

``make run`` starts it as a process of the stack (``python -m orders.demo``) and points the
gateway's ``KEFU_ORDERS_URL`` at it. Its orders (:mod:`orders.demo_data`) live in SQLite, written
afresh at every start so their dates stay relative to today (a delayed order is always two
days late). Every route but ``/healthz`` needs ``Authorization: Bearer <KEFU_ORDERS_API_KEY>``.
"""

from __future__ import annotations

import argparse
import hmac
import os
import sqlite3
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException

from orders.demo_data import demo_orders
from orders.models import Order


class DemoOrders:
    """Orders as JSON rows in one SQLite file (``:memory:`` for tests)."""

    def __init__(self, path: Path | str) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS orders (order_id TEXT PRIMARY KEY, "
                         "shopper_id TEXT NOT NULL, placed_at TEXT NOT NULL, body TEXT NOT NULL)")
        self._db.execute("CREATE INDEX IF NOT EXISTS by_shopper ON orders (shopper_id)")

    def replace_all(self, orders: Iterable[Order]) -> None:
        """Forget every order and keep these."""
        rows = [(o.order_id, o.shopper_id, o.placed_at.isoformat(), o.model_dump_json())
                for o in orders]
        with self._lock, self._db:
            self._db.execute("DELETE FROM orders")
            self._db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)", rows)

    def get(self, order_id: str) -> Order | None:
        """One order, or ``None``."""
        with self._lock:
            row = self._db.execute("SELECT body FROM orders WHERE order_id = ?",
                                   (order_id,)).fetchone()
        return Order.model_validate_json(row[0]) if row else None

    def of_shopper(self, shopper_id: str) -> list[Order]:
        """A shopper's orders, newest first."""
        with self._lock:
            rows = self._db.execute("SELECT body FROM orders WHERE shopper_id = ? "
                                    "ORDER BY placed_at DESC", (shopper_id,)).fetchall()
        return [Order.model_validate_json(r[0]) for r in rows]

    def close(self) -> None:
        """Close the database."""
        self._db.close()


def seed(store: DemoOrders, now: datetime | None = None) -> int:
    """Write the demo orders as of ``now``; how many."""
    orders = demo_orders(now or datetime.now(UTC))
    store.replace_all(orders)
    return len(orders)


def create_app(store: DemoOrders, api_key: str) -> FastAPI:
    """The contract's routes over ``store``, for callers showing ``api_key``."""
    if not api_key:
        raise ValueError("the demo order service needs an API key")

    def key_shown(authorization: Annotated[str | None, Header()] = None) -> None:
        shown = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(shown.encode(), api_key.encode()):
            raise HTTPException(401, "a valid API key is required")

    app = FastAPI(title="kefu demo order service", version="1.0.0")
    guarded = [Depends(key_shown)]

    def found(order_id: str) -> Order:
        order = store.get(order_id)
        if order is None:
            raise HTTPException(404, f"no order {order_id}")
        return order

    def part(value: Any, what: str) -> dict[str, Any]:
        if value is None:
            raise HTTPException(404, f"no {what}")
        body: dict[str, Any] = value.model_dump(mode="json")
        return body

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/orders/{order_id}", dependencies=guarded)
    def get_order(order_id: str) -> dict[str, Any]:
        return part(found(order_id), "order")

    @app.get("/shoppers/{shopper_id}/orders", dependencies=guarded)
    def list_orders(shopper_id: str) -> dict[str, Any]:
        return {"orders": [o.summary().model_dump(mode="json")
                           for o in store.of_shopper(shopper_id)]}

    @app.get("/orders/{order_id}/tracking", dependencies=guarded)
    def tracking(order_id: str) -> dict[str, Any]:
        return part(found(order_id).tracking, "tracking")

    @app.get("/orders/{order_id}/refund", dependencies=guarded)
    def refund(order_id: str) -> dict[str, Any]:
        return part(found(order_id).refund, "refund")

    @app.get("/orders/{order_id}/gift", dependencies=guarded)
    def gift(order_id: str) -> dict[str, Any]:
        return part(found(order_id).gift, "gift")

    return app


def main(argv: list[str] | None = None) -> int:
    """``python -m orders.demo --port P --db FILE``: seed and serve (the key from the env)."""
    import uvicorn  # only the service process needs the server

    parser = argparse.ArgumentParser(description="kefu's demo order service")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010)
    parser.add_argument("--db", type=Path, default=Path("var/orders/demo.sqlite"))
    args = parser.parse_args(argv)
    key = os.environ.get("KEFU_ORDERS_API_KEY", "")
    if not key:
        parser.error("KEFU_ORDERS_API_KEY is not set")
    args.db.parent.mkdir(parents=True, exist_ok=True)
    store = DemoOrders(args.db)
    seed(store)
    uvicorn.run(create_app(store, key), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
