"""HTTP client for the Rasa server (REST channel and HTTP API)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, cast

import httpx

from bot.gateway.errors import UpstreamUnavailable
from kefu import metrics
from kefu.conversation import Button, Role, Turn

logger = logging.getLogger(__name__)


class RasaMessage:
    """One message the bot sent back through the REST channel."""

    __slots__ = ("buttons", "text")

    def __init__(self, text: str, buttons: list[Button]) -> None:
        self.text = text
        self.buttons = buttons


class RasaClient:
    """Talks to one Rasa server; share one instance per process (it pools connections)."""

    def __init__(self, base_url: str, token: str, timeout: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._token = token
        # A connection attempt that fails is tried once more (nothing was sent yet); a request
        # that was sent is never resent: Rasa may have processed it.
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout,
                                       transport=transport or httpx.AsyncHTTPTransport(retries=1))

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._http.aclose()

    async def send(self, sender: str, text: str, metadata: Mapping[str, Any]) -> list[RasaMessage]:
        """Send a shopper message through the REST channel and return the bot's replies."""
        body = {"sender": sender, "message": text, "metadata": dict(metadata)}
        try:
            with metrics.RASA_LATENCY.time():
                data = await self._request("POST", "/webhooks/rest/webhook", json=body)
        except UpstreamUnavailable:
            metrics.ERRORS.labels("rasa").inc()
            raise
        return [_message(item) for item in cast(list[dict[str, Any]], data or [])]

    async def parse(self, text: str) -> dict[str, Any]:
        """NLU only (``/model/parse``); used by benchmarks as the raw-Rasa baseline."""
        data = await self._request("POST", "/model/parse", json={"text": text})
        return cast(dict[str, Any], data)

    async def append_events(self, sender: str, events: Sequence[Mapping[str, Any]]) -> None:
        """Append events to a conversation's tracker without running predictions."""
        await self._request(
            "POST", f"/conversations/{sender}/tracker/events",
            json=list(events), params={"token": self._token, "output_channel": "rest"},
        )

    async def ready(self) -> bool:
        """True when Rasa answers and has a model loaded."""
        try:
            status = await self._request("GET", "/status", params={"token": self._token})
        except UpstreamUnavailable:
            return False
        return bool(cast(dict[str, Any], status).get("model_file"))

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
            response.raise_for_status()
        except httpx.HTTPStatusError as exc:
            logger.warning("Rasa %s %s answered %s", method, path, exc.response.status_code)
            raise UpstreamUnavailable(
                f"Rasa answered {exc.response.status_code}", service="rasa") from exc
        except httpx.HTTPError as exc:
            logger.warning("Rasa %s %s failed: %s", method, path, exc)
            raise UpstreamUnavailable(
                "Rasa is not reachable", service="rasa", retry_after=2.0) from exc
        return response.json()


def _message(item: Mapping[str, Any]) -> RasaMessage:
    buttons = [Button(title=str(b.get("title", "")), payload=str(b.get("payload", "")))
               for b in item.get("buttons") or []]
    return RasaMessage(text=str(item.get("text") or ""), buttons=buttons)


def tracker_events(turns: Sequence[Turn]) -> list[dict[str, Any]]:
    """Rasa tracker events for the human part of a conversation, so Rasa's history holds it too."""
    events: list[dict[str, Any]] = []
    for turn in turns:
        stamp = turn.at.timestamp()
        if turn.role is Role.SHOPPER:
            events.append({
                "event": "user", "text": turn.text, "timestamp": stamp,
                "parse_data": {"intent": {"name": "human_conversation", "confidence": 1.0},
                               "entities": [], "text": turn.text},
                "metadata": {"handoff": True},
            })
        else:
            events.append({"event": "bot", "text": turn.text, "timestamp": stamp,
                           "metadata": {"handoff": True, "role": turn.role.value}})
    events.append({"event": "action", "name": "action_listen"})
    return events
