"""The proactive messages' templates, for knowledge managers (``/api/v1/proactive/templates``).

``GET`` lists every template ("{event}:{language}" → text, the managers' where set, else the
defaults), the defaults, which are the managers', and the variables a template may use;
``PUT …/{event}/{language}`` sets one and ``DELETE …/{event}/{language}`` puts the default back
(manager role; a template naming an unknown variable is refused with 422); ``POST …/preview``
renders a draft for the demo store's order of that event. The page ``/admin/templates/`` (UI kit,
the console's login) is the managers' editor over these routes.
"""

# No postponed annotations: FastAPI reads the routes' closure dependencies at runtime.
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from kefu.accounts import Agent, AgentRole
from kefu.errors import NotAuthorized
from kefu.http import Authenticate, agent_dependency
from kefu.pages import add_page
from orders.proactive import DEFAULTS, VARIABLES, OrderEvent, Templates, preview

PREFIX = "/api/v1/proactive/templates"
PAGE_PATH = "/admin/templates"
PAGE_DIR = Path(__file__).parent / "proactive_ui"


class TemplateIn(BaseModel):
    """A template's new text."""

    text: str = Field(min_length=1, max_length=500)


class PreviewIn(BaseModel):
    """A draft to see filled in."""

    event: OrderEvent
    language: str
    text: str = Field(min_length=1, max_length=500)


def create_router(templates: Templates, authenticate: Authenticate, *,
                  clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> APIRouter:
    """The template routes over ``templates``, and the managers' page."""
    router = APIRouter(prefix=PREFIX, tags=["proactive messages"])
    current_agent = agent_dependency(authenticate)

    @router.get("")
    async def list_templates(_agent: Annotated[Agent, Depends(current_agent)]) -> dict[str, Any]:
        """Every template, the defaults, the managers' ones, and the variables they may use."""
        return {"templates": await templates.all(), "variables": sorted(VARIABLES),
                "events": [e.value for e in OrderEvent],
                "defaults": {f"{e.value}:{lang}": t for (e, lang), t in DEFAULTS.items()},
                "customised": await templates.customised()}

    @router.put("/{event}/{language}")
    async def set_template(event: OrderEvent, language: str, body: TemplateIn,
                           agent: Annotated[Agent, Depends(current_agent)]) -> dict[str, str]:
        """Set one template (managers only)."""
        _manager(agent, "edit_template")
        await templates.set(event, language, body.text)
        return {"event": event.value, "language": language, "text": body.text}

    @router.delete("/{event}/{language}")
    async def reset_template(event: OrderEvent, language: str,
                             agent: Annotated[Agent, Depends(current_agent)]) -> dict[str, str]:
        """Put the default wording back (managers only)."""
        _manager(agent, "reset_template")
        text = await templates.reset(event, language)
        return {"event": event.value, "language": language, "text": text}

    @router.post("/preview")
    async def preview_template(body: PreviewIn,
                               _agent: Annotated[Agent, Depends(current_agent)]
                               ) -> dict[str, str]:
        """A draft filled in for the demo store's order of its event (checked like a save)."""
        order_id, text = preview(body.event, body.language, body.text, clock())
        return {"order_id": order_id, "text": text}

    outer = APIRouter()
    outer.include_router(router)
    add_page(outer, PAGE_PATH, PAGE_DIR, title="主动消息模板", subtitle="Proactive templates")
    return outer


def _manager(agent: Agent, action: str) -> None:
    if agent.role is not AgentRole.MANAGER:
        raise NotAuthorized("only managers edit templates", agent=agent.username, action=action)
