"""HTTP routes of the knowledge service (``/api/v1/knowledge/*``): translate, call, return.

Routes are plain ``def`` on purpose: encoding a question is CPU work, so FastAPI runs them in its
thread pool instead of on the event loop.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from knowledge.decision import Policy
from knowledge.errors import EntryNotFound
from knowledge.models import Candidate, DecideRequest, Decision, Entry
from knowledge.service import KnowledgeService
from knowledge.store import VersionInfo

PREFIX = "/api/v1/knowledge"


class SearchRequest(BaseModel):
    """Body of ``POST /api/v1/knowledge/search``."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=2000)
    at: datetime | None = None  # naive times are in the configured zone; default now
    k: int = Field(default=5, ge=1, le=50)


class SearchResponse(BaseModel):
    """Ranked candidates for a question, best first."""

    at: datetime  # the "as of" time used
    kb_version: str | None  # the version searched (None: nothing published)
    candidates: list[Candidate]


class VersionResponse(BaseModel):
    """What the service answers from right now."""

    version: VersionInfo | None  # None: nothing published, every question is handed off
    entries: int
    policy: Policy | None  # where the decision cuts the confidence model's probabilities
    provisional: bool = False  # answering before its held-out questions are asked
    build_seconds: float | None


def create_router(service: KnowledgeService) -> APIRouter:
    """The knowledge routes, answering from ``service`` (whose index may be swapped any time)."""
    router = APIRouter(prefix=PREFIX, tags=["knowledge"])

    @router.post("/decide")
    def decide(body: DecideRequest) -> Decision:
        """Answer, clarify or hand off one shopper question."""
        return service.decide(body.text, at=body.at, intent=body.intent,
                              intent_confidence=body.intent_confidence)

    @router.post("/search")
    def search(body: SearchRequest) -> SearchResponse:
        """The best candidates for a question, without a decision."""
        pinned = service.pinned()  # version and candidates from the same index
        at, version = pinned.as_of(body.at), pinned.version
        return SearchResponse(at=at, kb_version=version.id if version else None,
                              candidates=pinned.search(body.text, at=at, k=body.k))

    @router.get("/entries/{entry_id}")
    def entry(entry_id: str) -> Entry:
        """One entry of the live version."""
        found = service.entry(entry_id)
        if found is None:
            raise EntryNotFound(entry_id)
        return found

    @router.get("/version")
    def version() -> VersionResponse:
        """The live version this process answers from, with its answer policy."""
        index = service.index
        if index is None:
            return VersionResponse(version=None, entries=0, policy=None, build_seconds=None)
        return VersionResponse(version=index.info, entries=len(index.kb.entries),
                               policy=index.policy, provisional=index.provisional,
                               build_seconds=index.build_seconds)

    return router
