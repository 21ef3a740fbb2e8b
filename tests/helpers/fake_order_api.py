"""A local fake of the order-system contract (orders/openapi.yaml), as a store would serve it.

Written from the document, not from kefu's models: plain JSON dicts, the five routes, the
bearer key, 404 for "nothing of that kind". ``fail_with`` makes every route answer that status
(a store's backend in trouble); ``body_override`` serves a body that breaks the contract.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse

KEY = "store-issued-key"

ORDER: dict[str, Any] = {
    "order_id": "2026010112345",
    "shopper_id": "acct-42",
    "buyer_phone_masked": "186****4321",
    "status": "shipped",
    "placed_at": "2026-01-01T08:00:00+08:00",
    "items": [{"sku": "A1", "name": "保温杯", "quantity": 2, "unit_price": "59.00"}],
    "total": "118.00",
    "paid": "118.00",
    "currency": "CNY",
    "ship_by": "2026-01-03T08:00:00+08:00",
    "tracking": {"carrier": "顺丰速运", "waybill": "SF100", "events": [
        {"at": "2026-01-02T09:00:00+08:00", "location": "杭州", "description": "已揽收"},
        {"at": "2026-01-03T09:00:00+08:00", "location": "上海", "description": "派送中"}]},
    "refund": None,
    "gift": {"name": "杯套", "status": "pending", "tracking": None},
}


class FakeStore:
    """The fake's state, changed by tests."""

    def __init__(self) -> None:
        self.orders: dict[str, dict[str, Any]] = {ORDER["order_id"]: ORDER}
        self.fail_with: int | None = None
        self.body_override: Any = None
        self.calls: list[str] = []


def create_app(store: FakeStore) -> FastAPI:
    """The contract's five routes over ``store``."""
    app = FastAPI()

    def check(path: str, authorization: str | None) -> None:
        store.calls.append(path)
        if authorization != f"Bearer {KEY}":
            raise HTTPException(401)
        if store.fail_with is not None:
            raise HTTPException(store.fail_with)

    def answer(body: Any) -> Any:
        return JSONResponse(store.body_override if store.body_override is not None else body)

    def order_or_404(order_id: str) -> dict[str, Any]:
        if order_id not in store.orders:
            raise HTTPException(404)
        return store.orders[order_id]

    @app.get("/orders/{order_id}")
    def order(order_id: str, authorization: str | None = Header(None)) -> Any:
        check(f"/orders/{order_id}", authorization)
        return answer(order_or_404(order_id))

    @app.get("/shoppers/{shopper_id}/orders")
    def orders_of(shopper_id: str, authorization: str | None = Header(None)) -> Any:
        check(f"/shoppers/{shopper_id}/orders", authorization)
        mine = [o for o in store.orders.values() if o["shopper_id"] == shopper_id]
        return answer({"orders": [{"order_id": o["order_id"], "status": o["status"],
                                   "placed_at": o["placed_at"], "total": o["total"],
                                   "title": o["items"][0]["name"]} for o in mine]})

    for part in ("tracking", "refund", "gift"):
        def route(order_id: str, authorization: str | None = Header(None),
                  part: str = part) -> Any:
            check(f"/orders/{order_id}/{part}", authorization)
            value = order_or_404(order_id).get(part)
            if value is None:
                raise HTTPException(404)
            return answer(value)

        app.add_api_route(f"/orders/{{order_id}}/{part}", route, methods=["GET"])
    return app
