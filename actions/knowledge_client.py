"""HTTP client of the gateway's knowledge API, as the actions use it.

Only :mod:`knowledge.models` is imported from the knowledge package: the action server must stay
free of torch and sentence-transformers, which live in the gateway process.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import httpx
from pydantic import ValidationError

from actions.errors import KnowledgeUnavailableError
from knowledge.models import DecideRequest, Decision, Entry

logger = logging.getLogger(__name__)

DECIDE_PATH = "/api/v1/knowledge/decide"
ENTRY_PATH = "/api/v1/knowledge/entries/{entry_id}"


class KnowledgeClient:
    """Asks the gateway for knowledge decisions and entries."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout, transport=transport
        )

    async def decide(
        self,
        text: str,
        *,
        intent: str | None = None,
        intent_confidence: float | None = None,
        at: datetime | None = None,
    ) -> Decision:
        """Answer, clarify or hand off for ``text`` (``POST /api/v1/knowledge/decide``)."""
        body = DecideRequest(
            text=text[:2000], intent=intent, intent_confidence=intent_confidence, at=at
        )
        data = await self._request(
            "POST", DECIDE_PATH, json=body.model_dump(mode="json", exclude_none=True)
        )
        try:
            return Decision.model_validate(data)
        except ValidationError as exc:
            raise KnowledgeUnavailableError(f"unusable decision: {exc}") from exc

    async def entry(self, entry_id: str) -> Entry | None:
        """The live entry with that id, or ``None`` when the knowledge base has no such entry."""
        try:
            data = await self._request("GET", ENTRY_PATH.format(entry_id=entry_id))
        except KnowledgeUnavailableError as exc:
            if exc.upstream_status == httpx.codes.NOT_FOUND:
                return None
            raise
        try:
            return Entry.model_validate({k: v for k, v in data.items() if k in Entry.model_fields})
        except ValidationError as exc:
            raise KnowledgeUnavailableError(f"unusable entry: {exc}") from exc

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise KnowledgeUnavailableError(f"{method} {path} failed: {exc!r}") from exc
        if response.is_error:
            raise KnowledgeUnavailableError(
                f"{method} {path} answered {response.status_code}: {response.text[:200]}",
                upstream_status=response.status_code,
            )
        try:
            data = response.json()
        except ValueError as exc:
            raise KnowledgeUnavailableError(f"{method} {path} answered no JSON") from exc
        if not isinstance(data, dict):
            raise KnowledgeUnavailableError(f"{method} {path} answered {type(data).__name__}")
        return data
