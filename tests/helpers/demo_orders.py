"""The demo order service in process: its store seeded, and the real HTTP adapter talking to its app
through httpx's ASGI transport (no port, the adapter's whole HTTP path)."""

from __future__ import annotations

from datetime import datetime

import httpx

from orders import HttpOrderSystem
from orders.demo import DemoOrders, create_app, seed

KEY = "demo-key"


def seeded(now: datetime | None = None) -> DemoOrders:
    """An in-memory demo store holding the demo orders as of ``now``."""
    store = DemoOrders(":memory:")
    seed(store, now)
    return store


def over_http(store: DemoOrders) -> HttpOrderSystem:
    """The adapter a gateway would use, answered by ``store``'s demo service."""
    return HttpOrderSystem("http://orders.test", KEY,
                           transport=httpx.ASGITransport(app=create_app(store, KEY)))
