"""The agents' order lookup: ``GET /api/v1/orders/{order_id}`` for the console's order panel.

Agents only (a console session); the order is read live from the store's order system, so the
panel shows what the store shows now. No order system configured: 404
``order_system_not_configured``; one that does not answer: 503.
"""

# No postponed annotations: FastAPI reads the route's closure dependency at runtime.
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from kefu.accounts import Agent
from kefu.http import Authenticate, agent_dependency
from orders.contract import OrderSystem
from orders.errors import OrderNotFound, OrderSystemNotConfigured

PREFIX = "/api/v1/orders"


def create_router(system: OrderSystem | None, authenticate: Authenticate) -> APIRouter:
    """The lookup route over ``system`` (``None``: no order system configured)."""
    router = APIRouter(prefix=PREFIX, tags=["orders"])
    current_agent = agent_dependency(authenticate)

    @router.get("/{order_id}")
    async def get_order(order_id: str,
                        _agent: Annotated[Agent, Depends(current_agent)]) -> dict[str, Any]:
        """The order as the store's order system has it now."""
        if system is None:
            raise OrderSystemNotConfigured("no order system is configured (KEFU_ORDERS_URL)")
        order = await system.order(order_id)
        if order is None:
            raise OrderNotFound(f"no order {order_id}", order_id=order_id)
        body: dict[str, Any] = order.model_dump(mode="json")
        return body

    return router
