"""The actions' way to the knowledge decision: a function call into the gateway's service.

The actions are served by the gateway process (:mod:`actions.endpoint`), where the knowledge
service and its encoders already live, so a decision is a call, not an HTTP round trip. Deciding
is CPU work (the query embedding, scoring), so it runs in a worker thread and the event loop keeps
serving other shoppers meanwhile.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Protocol

from anyio import to_thread

from actions.errors import KnowledgeUnavailableError
from kefu import metrics
from knowledge.models import Decision, Entry

logger = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000


class DecisionSource(Protocol):
    """What the actions need of :class:`knowledge.service.KnowledgeService`."""

    def decide(self, text: str, *, at: datetime | None = None, intent: str | None = None,
               intent_confidence: float | None = None) -> Decision:
        """Answer, clarify or hand off ``text``."""

    def entry(self, entry_id: str) -> Entry | None:
        """The entry with that id in the live version, if any (whatever its window)."""

    def now(self) -> datetime:
        """The service's current time (campaign windows are judged against it)."""


class KnowledgeClient:
    """Asks the knowledge service for decisions and entries; its failures become one error."""

    def __init__(self, service: DecisionSource) -> None:
        self._service = service

    async def decide(
        self,
        text: str,
        *,
        intent: str | None = None,
        intent_confidence: float | None = None,
        at: datetime | None = None,
    ) -> Decision:
        """Answer, clarify or hand off for ``text``, in a worker thread.

        Raises:
            KnowledgeUnavailableError: the service failed (the action then hands off).
        """
        def decide() -> Decision:
            return self._service.decide(text[:MAX_QUESTION_CHARS], at=at, intent=intent,
                                        intent_confidence=intent_confidence)

        try:
            with metrics.KNOWLEDGE_LATENCY.time():
                decision = await to_thread.run_sync(decide)
        except Exception as exc:
            metrics.ERRORS.labels("knowledge").inc()
            raise KnowledgeUnavailableError(f"the knowledge decision failed: {exc!r}") from exc
        metrics.DECISIONS.labels(decision.kind.value).inc()
        return decision

    async def entry(self, entry_id: str) -> Entry | None:
        """The entry with that id if it is live now, else ``None``.

        A shopper can type any ``/choose_option`` payload, so an entry outside its campaign
        window (a flash sale announced for later) is as absent as an unknown one.
        """
        try:
            found = self._service.entry(entry_id)
            live = found is not None and found.active_at(self._service.now())
        except Exception as exc:
            raise KnowledgeUnavailableError(f"entry {entry_id} unavailable: {exc!r}") from exc
        return found if live else None
