"""HTTP routes of the knowledge admin (``/api/v1/kb/*``) and its page (``/admin/kb/``).

Routes only translate: they authenticate the caller with the agent console's session tokens
(``Authorization: Bearer <token>`` from ``POST /api/v1/agent/login``), check the role, call
:class:`~knowledge.curation.admin.AdminService` and return its models. Every logged-in agent may
look (versions, reviews, calendar, topics, "try a question"); only managers may change anything
(upload, draft, publish, roll back): others get 403.

Errors are raised, never answered here: the app maps them to JSON in one place (`kefu.http`), so
validation problems come back row by row (422), a publish refused by the test gate with the gate
report (409), from the fields each error carries.
"""

# No ``from __future__ import annotations``: FastAPI reads the route annotations at runtime and
# they refer to dependencies built inside ``create_router``.

import logging
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from kefu.accounts import Agent, AgentRole
from kefu.errors import NotAuthorized
from kefu.http import Authenticate, agent_dependency
from kefu.pages import add_page
from kefu.welcome import WelcomeSettings
from knowledge.curation.admin import (
    AdminService,
    DraftReview,
    PublishResult,
    TopicView,
    TryResult,
    VersionsView,
)
from knowledge.curation.diff import KbDiff
from knowledge.curation.impact import ImpactReport
from knowledge.curation.review import CampaignWindow
from knowledge.errors import (
    Problem,
    ValidationFailed,
)
from knowledge.loader import KbFormat
from knowledge.models import Category
from knowledge.store import AuditRecord, VersionInfo

logger = logging.getLogger(__name__)

PREFIX = "/api/v1/kb"
PAGE_DIR = Path(__file__).parent / "admin_ui"
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
_TEMPLATE_TYPES = {
    KbFormat.YAML: "application/yaml",
    KbFormat.CSV: "text/csv",
    KbFormat.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

class TryRequest(BaseModel):
    """Body of ``POST /api/v1/kb/try``: a question for the live version, a draft or a version."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=2000)
    at: datetime | None = None  # naive times are in the configured zone; default now
    draft_id: str | None = Field(default=None, max_length=64)
    version: str | None = Field(default=None, max_length=64)


class PublishRequest(BaseModel):
    """Body of ``POST /api/v1/kb/drafts/{id}/publish``."""

    model_config = ConfigDict(extra="forbid")

    note: str = Field(default="", max_length=1000)
    override_reason: str | None = Field(default=None, max_length=2000)


class RollbackRequest(BaseModel):
    """Body of ``POST /api/v1/kb/rollback``."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1, max_length=64)
    note: str = Field(default="", max_length=1000)


class TopicDraftRequest(BaseModel):
    """Body of ``POST /api/v1/kb/topics/{id}/draft``: a new entry, or variants of ``entry_id``."""

    model_config = ConfigDict(extra="forbid")

    entry_id: str | None = Field(default=None, max_length=128)  # add the examples to this entry
    new_id: str | None = Field(default=None, max_length=128)
    question: str | None = Field(default=None, max_length=2000)
    answer: str | None = Field(default=None, max_length=4000)
    category: Category | None = None


def create_router(admin: AdminService, authenticate: Authenticate) -> APIRouter:
    """The admin API and page; ``authenticate`` is the console's token check.

    Mount with ``app.include_router(create_router(AdminService(runtime, redis),
    handoff.agents.authenticate))``.
    """
    router = APIRouter()
    current_agent = agent_dependency(authenticate)

    async def current_manager(agent: Annotated[Agent, Depends(current_agent)]) -> Agent:
        if agent.role is not AgentRole.MANAGER:
            raise NotAuthorized("only knowledge managers may change the knowledge base",
                                agent=agent.username, action="kb.change")
        return agent

    _read_routes(router, admin, Depends(current_agent))
    _change_routes(router, admin, Depends(current_manager))
    add_page(router, "/admin/kb", PAGE_DIR, title="知识库管理", subtitle="Knowledge admin")
    return router


def _read_routes(router: APIRouter, admin: AdminService, auth: Any) -> None:
    tags: list[str | Any] = ["knowledge admin"]

    @router.get(f"{PREFIX}/drafts/{{draft_id}}", tags=tags)
    async def review(draft_id: str, _agent: Annotated[Agent, auth]) -> DraftReview:
        """The review of a draft: diff against live, close pairs, test gate, calendar."""
        return await admin.review(draft_id)

    @router.get(f"{PREFIX}/drafts/{{draft_id}}/impact", tags=tags)
    async def impact(draft_id: str, _agent: Annotated[Agent, auth]) -> ImpactReport:
        """What else the draft changes: live tests and recent shopper questions, before/after."""
        return await admin.impact(draft_id)

    @router.get(f"{PREFIX}/drafts/{{draft_id}}/file", tags=tags)
    async def draft_file(draft_id: str, _agent: Annotated[Agent, auth]) -> Response:
        """The draft as a YAML file, to edit and upload again."""
        body = await admin.draft_yaml(draft_id)
        return Response(body, media_type="application/yaml", headers={
            "Content-Disposition": f'attachment; filename="draft-{draft_id}.yaml"'})

    @router.post(f"{PREFIX}/try", tags=tags)
    async def try_question(body: TryRequest, _agent: Annotated[Agent, auth]) -> TryResult:
        """Ranked candidates and the decision for a question as of any time."""
        return await admin.try_question(body.text, at=body.at, draft_id=body.draft_id,
                                        version_id=body.version)

    @router.get(f"{PREFIX}/versions", tags=tags)
    async def versions(_agent: Annotated[Agent, auth]) -> VersionsView:
        """Every published version, newest first, and the live one."""
        return await admin.versions()

    @router.get(f"{PREFIX}/versions/{{version_id}}/diff", tags=tags)
    async def version_diff(version_id: str, _agent: Annotated[Agent, auth],
                           against: str | None = Query(default=None, max_length=64)) -> KbDiff:
        """What a version changed against the one before it (or ``against``)."""
        return await admin.version_diff(version_id, against)

    @router.get(f"{PREFIX}/calendar", tags=tags)
    async def calendar(_agent: Annotated[Agent, auth],
                       draft_id: str | None = Query(default=None, max_length=64),
                       version: str | None = Query(default=None, max_length=64),
                       ) -> list[CampaignWindow]:
        """Which entries go live and expire when (live version, a draft or a version)."""
        return await admin.calendar(draft_id=draft_id, version_id=version)

    @router.get(f"{PREFIX}/audit", tags=tags)
    async def audit(_agent: Annotated[Agent, auth],
                    limit: int = Query(default=100, ge=1, le=1000)) -> list[AuditRecord]:
        """Publishes, rollbacks and gate overrides, newest first."""
        return await admin.audit(limit)

    @router.get(f"{PREFIX}/topics", tags=tags)
    async def topics(_agent: Annotated[Agent, auth],
                     min_conversations: int = Query(default=2, ge=1, le=1000)) -> list[TopicView]:
        """Questions the bot did not handle, grouped by meaning, largest first."""
        return await admin.topics(min_conversations=min_conversations)

    @router.get(f"{PREFIX}/welcome", tags=tags)
    async def welcome(_agent: Annotated[Agent, auth]) -> WelcomeSettings:
        """The web chat's greeting and quick questions, per language."""
        return await admin.welcome.get()

    @router.get(f"{PREFIX}/templates/{{fmt}}", tags=tags)
    async def template(fmt: KbFormat, _agent: Annotated[Agent, auth]) -> Response:
        """A starter file (header and one example) in yaml, csv or xlsx (staff only)."""
        return Response(admin.template(fmt), media_type=_TEMPLATE_TYPES[fmt], headers={
            "Content-Disposition": f'attachment; filename="kefu-kb-template.{fmt.value}"'})


def _change_routes(router: APIRouter, admin: AdminService, manager: Any) -> None:
    tags: list[str | Any] = ["knowledge admin"]

    @router.post(f"{PREFIX}/drafts", tags=tags, responses={422: {"description": "problems"}})
    async def upload(agent: Annotated[Agent, manager], file: Annotated[UploadFile, File()],
                     mode: Annotated[Literal["replace", "merge"], Form()] = "replace",
                     ) -> DraftReview:
        """Upload a YAML, CSV or XLSX knowledge base: validated, kept as a draft, reviewed.

        ``mode=merge``: the file holds some entries (a campaign) to add to the live version.
        """
        content = await file.read(MAX_UPLOAD_BYTES + 1)
        name = file.filename or "upload"
        if len(content) > MAX_UPLOAD_BYTES:
            raise ValidationFailed([Problem(name, "file", None,
                                            f"larger than {MAX_UPLOAD_BYTES // 1024} KiB")])
        return await admin.upload(content, name, author=agent.username, merge=mode == "merge")

    @router.post(f"{PREFIX}/drafts/{{draft_id}}/publish", tags=tags,
                 responses={409: {"description": "refused by the test gate"}})
    async def publish(draft_id: str, body: PublishRequest,
                      agent: Annotated[Agent, manager]) -> PublishResult:
        """Publish a draft (test gate first; an override needs a written reason)."""
        return await admin.publish(draft_id, author=agent.username, note=body.note,
                                   override_reason=body.override_reason)

    @router.put(f"{PREFIX}/welcome", tags=tags)
    async def set_welcome(body: WelcomeSettings,
                          _agent: Annotated[Agent, manager]) -> WelcomeSettings:
        """Set the greeting and up to four quick questions the web chat shows when opened."""
        return await admin.welcome.set(body)

    @router.post(f"{PREFIX}/rollback", tags=tags)
    async def rollback(body: RollbackRequest, agent: Annotated[Agent, manager]) -> VersionInfo:
        """Make an earlier version live again."""
        return await admin.rollback(body.version, author=agent.username, note=body.note)

    @router.post(f"{PREFIX}/topics/{{topic_id}}/draft", tags=tags)
    async def draft_from_topic(topic_id: str, body: TopicDraftRequest,
                               agent: Annotated[Agent, manager]) -> DraftReview:
        """Draft a new entry (or new variants of an entry) from an escalation topic."""
        return await admin.draft_from_topic(
            topic_id, author=agent.username, entry_id=body.entry_id, new_id=body.new_id,
            question=body.question, answer=body.answer, category=body.category)
