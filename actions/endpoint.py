"""The action endpoint Rasa calls, in the gateway process: rasa-sdk's executor behind a route.

Rasa runs a custom action by posting the action call (next action, sender, tracker state) to
``POST {ACTIONS_PREFIX}/webhook``, the URL of its ``action_endpoint`` (``bot/rasa/endpoints.yml``).
The route hands the call to rasa-sdk's :class:`~rasa_sdk.executor.ActionExecutor`, which runs the
action with a rasa-sdk tracker and dispatcher, exactly as ``python -m rasa_sdk`` would; only the
process differs: the actions run beside the knowledge service, so a decision is a function call
(:mod:`actions.knowledge_client`) instead of a second HTTP trip back into the gateway.

The endpoint is internal: only Rasa may call it. Every call must carry the shared secret in the
``X-Kefu-Action-Secret`` header (``KEFU_ACTION_SECRET``; Rasa's ``endpoints.yml`` sends it), and
anything else is refused with 403. It is left out of the public API docs.
"""

from __future__ import annotations

import hmac
import json
import logging
import zlib
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from rasa_sdk.executor import ActionExecutor
from rasa_sdk.interfaces import ActionExecutionRejection, ActionNotFoundException

from actions.actions import (
    ActionAnswerQuestion,
    ActionChooseOption,
    ActionFeedback,
    ActionNoneOfThese,
    KefuAction,
)
from actions.aftersale import ActionStartAftersale, ActionSubmitAftersale, ValidateAftersaleForm
from actions.aftersale_asks import (
    ActionAskAftersaleConfirm,
    ActionAskAftersaleItem,
    ActionAskAftersaleOrder,
    ActionAskAftersalePhoto,
    ActionAskAftersaleTimeSlot,
)
from actions.errors import ActionCallRefused, ActionNotFound, ActionRejected
from actions.orders import (
    ActionCaptureOrLookUpOrderNumber,
    ActionOrderStatus,
    ActionProactiveSubscription,
    ActionVerifyOrder,
)
from actions.people import ActionHandoff, ActionKeepWithBot, ActionLeaveMessage
from actions.services import Services
from actions.workorders import (
    ActionAskGiftConfirm,
    ActionSubmitGiftRegistration,
    ActionWorkOrderProgress,
    ValidateGiftRegistrationForm,
)

logger = logging.getLogger(__name__)

ACTIONS_PREFIX = "/internal/actions"
SECRET_HEADER = "X-Kefu-Action-Secret"
ACTIONS: tuple[type[KefuAction], ...] = (
    ActionAnswerQuestion, ActionCaptureOrLookUpOrderNumber, ActionChooseOption, ActionFeedback,
    ActionHandoff, ActionKeepWithBot, ActionLeaveMessage, ActionNoneOfThese,
    ActionOrderStatus, ActionVerifyOrder, ValidateGiftRegistrationForm, ActionAskGiftConfirm,
    ActionSubmitGiftRegistration, ActionWorkOrderProgress, ActionProactiveSubscription,
    ActionStartAftersale, ValidateAftersaleForm, ActionAskAftersaleOrder, ActionAskAftersaleItem,
    ActionAskAftersalePhoto, ActionAskAftersaleTimeSlot, ActionAskAftersaleConfirm,
    ActionSubmitAftersale,
)


def build_executor(services: Services) -> ActionExecutor:
    """rasa-sdk's executor with every kefu action registered, each calling ``services``."""
    executor = ActionExecutor()
    for action in ACTIONS:
        executor.register_action(action(services))
    return executor


def create_router(executor: ActionExecutor, secret: str) -> APIRouter:
    """``POST {ACTIONS_PREFIX}/webhook``: run the action Rasa asks for, for Rasa only."""
    if not secret:
        raise ValueError("the action endpoint needs a shared secret")
    router = APIRouter(prefix=ACTIONS_PREFIX, include_in_schema=False)

    @router.post("/webhook")
    async def webhook(
        request: Request,
        given: Annotated[str | None, Header(alias=SECRET_HEADER)] = None,
    ) -> JSONResponse:
        """Run one action call; 403 unless it carries the shared secret."""
        if given is None or not hmac.compare_digest(given.encode(), secret.encode()):
            raise ActionCallRefused("the action endpoint only answers Rasa")
        result = await run_action(executor, await _action_call(request))
        return JSONResponse(result)

    return router


async def run_action(executor: ActionExecutor, action_call: dict[str, Any]) -> dict[str, Any]:
    """Run one action call: ``{"events": [...], "responses": [...]}`` for Rasa.

    kefu's actions never read the domain, so Rasa does not send it (``enable_selective_domain``
    in ``endpoints.yml``); rasa-sdk's executor wants a domain or a known digest, and gets an
    empty one.
    """
    action_call.setdefault("domain", {})
    name = str(action_call.get("next_action") or "")
    try:
        result = await executor.run(action_call)
    except ActionNotFoundException as exc:
        raise ActionNotFound(f"no action named {name!r}", action_name=name) from exc
    except ActionExecutionRejection as exc:
        raise ActionRejected(str(exc.message), action_name=name) from exc
    if result is None:
        return {"events": [], "responses": []}
    body: dict[str, Any] = result.model_dump()
    return body


async def _action_call(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if request.headers.get("content-encoding") == "deflate":  # Rasa's optional compression
        raw = zlib.decompress(raw)
    try:
        call = json.loads(raw)
    except ValueError as exc:
        raise ActionRejected("an action call is a JSON object", action_name="") from exc
    if not isinstance(call, dict):
        raise ActionRejected("an action call is a JSON object", action_name="")
    return call
