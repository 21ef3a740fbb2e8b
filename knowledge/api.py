"""HTTP routes of the knowledge service (``/api/v1/knowledge/*``): translate, call, return.

Routes are plain ``def`` on purpose: encoding a question is CPU work, so FastAPI runs them in its
thread pool instead of on the event loop.

Anyone may ask what the bot would answer **now**; only staff (a console session token) may look
further: a decision or search "as of" another time (``at``) and an entry outside its campaign
window would leak a campaign (a flash-sale code) before it is announced, and the version's
record (author, notes, answer policy) is the team's. So: ``decide`` and ``search`` refuse ``at``
without a staff token (401), ``entries/{id}`` answers anonymous callers only with entries live
now (404 otherwise), and ``version`` needs a staff token.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route annotations at runtime and
# they refer to the per-router session dependencies, closure variables.

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from kefu.accounts import Agent
from kefu.errors import NotAuthenticated
from kefu.http import Authenticate, agent_dependency, optional_agent_dependency
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


def create_router(service: KnowledgeService, authenticate: Authenticate) -> APIRouter:
    """The knowledge routes, answering from ``service`` (whose index may be swapped any time).

    ``authenticate`` is the console's session check: staff see past and future, others now.
    """
    router = APIRouter(prefix=PREFIX, tags=["knowledge"])
    staff = Depends(agent_dependency(authenticate))
    maybe_staff = Depends(optional_agent_dependency(authenticate))

    @router.post("/decide", responses={401: {"description": "`at` without a staff token"}})
    def decide(body: DecideRequest, agent: Annotated[Agent | None, maybe_staff]) -> Decision:
        """Answer, clarify or hand off one shopper question (as of `at`: staff only)."""
        _now_unless_staff(body.at, agent)
        return service.decide(body.text, at=body.at, intent=body.intent,
                              intent_confidence=body.intent_confidence)

    @router.post("/search", responses={401: {"description": "`at` without a staff token"}})
    def search(body: SearchRequest, agent: Annotated[Agent | None, maybe_staff]) -> SearchResponse:
        """The best candidates for a question, without a decision (as of `at`: staff only)."""
        _now_unless_staff(body.at, agent)
        pinned = service.pinned()  # version and candidates from the same index
        at, version = pinned.as_of(body.at), pinned.version
        return SearchResponse(at=at, kb_version=version.id if version else None,
                              candidates=pinned.search(body.text, at=at, k=body.k))

    @router.get("/entries/{entry_id}")
    def entry(entry_id: str, agent: Annotated[Agent | None, maybe_staff]) -> Entry:
        """One entry of the live version (outside its window: staff only)."""
        pinned = service.pinned()
        found = pinned.entry(entry_id)
        if found is None or (agent is None and not found.active_at(pinned.now())):
            raise EntryNotFound(entry_id)
        return found

    @router.get("/version", responses={401: {"description": "staff only"}})
    def version(_agent: Annotated[Agent, staff]) -> VersionResponse:
        """The live version this process answers from, with its answer policy (staff only)."""
        index = service.index
        if index is None:
            return VersionResponse(version=None, entries=0, policy=None, build_seconds=None)
        return VersionResponse(version=index.info, entries=len(index.kb.entries),
                               policy=index.policy, provisional=index.provisional,
                               build_seconds=index.build_seconds)

    return router


def _now_unless_staff(at: datetime | None, agent: Agent | None) -> None:
    if at is not None and agent is None:
        raise NotAuthenticated("asking as of another time (`at`) needs a staff token")
