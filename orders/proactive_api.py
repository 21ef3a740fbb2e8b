"""The proactive messages' templates, for knowledge managers (``/api/v1/proactive/templates``).

``GET`` lists every template ("{event}:{language}" → text, the managers' where set, else the
defaults) with the variables a template may use; ``PUT …/{event}/{language}`` sets one (manager
role; a template naming an unknown variable is refused with 422).
"""

# No postponed annotations: FastAPI reads the routes' closure dependencies at runtime.
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from kefu.accounts import Agent, AgentRole
from kefu.errors import NotAuthorized
from kefu.http import Authenticate, agent_dependency
from orders.proactive import VARIABLES, OrderEvent, Templates

PREFIX = "/api/v1/proactive/templates"


class TemplateIn(BaseModel):
    """A template's new text."""

    text: str = Field(min_length=1, max_length=500)


def create_router(templates: Templates, authenticate: Authenticate) -> APIRouter:
    """The template routes over ``templates``."""
    router = APIRouter(prefix=PREFIX, tags=["proactive messages"])
    current_agent = agent_dependency(authenticate)

    @router.get("")
    async def list_templates(_agent: Annotated[Agent, Depends(current_agent)]) -> dict[str, Any]:
        """Every template and the variables they may use."""
        return {"templates": await templates.all(), "variables": sorted(VARIABLES),
                "events": [e.value for e in OrderEvent]}

    @router.put("/{event}/{language}")
    async def set_template(event: OrderEvent, language: str, body: TemplateIn,
                           agent: Annotated[Agent, Depends(current_agent)]) -> dict[str, str]:
        """Set one template (managers only)."""
        if agent.role is not AgentRole.MANAGER:
            raise NotAuthorized("only managers edit templates", agent=agent.username,
                                action="edit_template")
        await templates.set(event, language, body.text)
        return {"event": event.value, "language": language, "text": body.text}

    return router
