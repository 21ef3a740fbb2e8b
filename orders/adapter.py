"""The HTTP adapter: the order-system contract over a store's implementation of openapi.yaml.

:class:`HttpOrderSystem` is an :class:`~orders.contract.OrderSystem` on one pooled httpx client
with a short timeout.

Anything but a well-formed answer (connection refused, timeout, 5xx, 401, a body that does not
fit the contract) is :class:`~orders.errors.OrderSystemUnavailable`; a 404 is "no such thing".
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from orders.errors import OrderSystemUnavailable
from orders.models import Gift, Order, OrderSummary, Refund, Tracking
from orders.settings import OrderSettings

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


class HttpOrderSystem:
    """A store's order system reached over HTTP."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 3.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers,
                                         timeout=timeout, transport=transport)

    @classmethod
    def from_settings(cls, settings: OrderSettings) -> HttpOrderSystem | None:
        """The adapter the settings describe, or ``None`` when no order system is configured."""
        if not settings.url:
            return None
        key = settings.api_key.get_secret_value() if settings.api_key else None
        return cls(settings.url, key, timeout=settings.timeout_seconds)

    async def order(self, order_id: str) -> Order | None:
        """See :class:`~orders.contract.OrderSystem`."""
        return await self._get(f"/orders/{quote(order_id, safe='')}", Order)

    async def orders_of(self, shopper_id: str) -> list[OrderSummary]:
        """See :class:`~orders.contract.OrderSystem`."""
        body = await self._json(f"/shoppers/{quote(shopper_id, safe='')}/orders")
        if body is None:
            return []
        try:
            return [OrderSummary.model_validate(o) for o in body["orders"]]
        except (KeyError, TypeError, ValidationError) as exc:
            raise OrderSystemUnavailable(f"the order list breaks the contract: {exc}") from exc

    async def tracking(self, order_id: str) -> Tracking | None:
        """See :class:`~orders.contract.OrderSystem`."""
        return await self._get(f"/orders/{quote(order_id, safe='')}/tracking", Tracking)

    async def refund(self, order_id: str) -> Refund | None:
        """See :class:`~orders.contract.OrderSystem`."""
        return await self._get(f"/orders/{quote(order_id, safe='')}/refund", Refund)

    async def gift(self, order_id: str) -> Gift | None:
        """See :class:`~orders.contract.OrderSystem`."""
        return await self._get(f"/orders/{quote(order_id, safe='')}/gift", Gift)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def _get(self, path: str, model: type[M]) -> M | None:
        body = await self._json(path)
        if body is None:
            return None
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            raise OrderSystemUnavailable(f"{path} breaks the contract: {exc}") from exc

    async def _json(self, path: str) -> Any:
        try:
            response = await self._client.get(path)
        except httpx.HTTPError as exc:
            logger.warning("order system unreachable (%s): %r", path, exc)
            raise OrderSystemUnavailable(f"the order system did not answer: {exc!r}") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise OrderSystemUnavailable(
                f"the order system answered {response.status_code} for {path}")
        try:
            return response.json()
        except ValueError as exc:
            raise OrderSystemUnavailable(f"{path} answered no JSON") from exc
