"""Rasa custom actions of kefu, served by the gateway process (:mod:`actions.endpoint`).

Thin on purpose: each action reads the tracker, calls one service (the knowledge decision, the
conversation record, the handoff service) and writes to the dispatcher.
"""

from actions.actions import (
    ActionAnswerQuestion,
    ActionCaptureOrderNumber,
    ActionChooseOption,
    ActionFeedback,
    ActionNoneOfThese,
)
from actions.endpoint import ACTIONS_PREFIX, SECRET_HEADER, build_executor, create_router
from actions.knowledge_client import KnowledgeClient
from actions.people import ActionHandoff, ActionKeepWithBot, ActionLeaveMessage
from actions.services import Services

__all__ = [
    "ACTIONS_PREFIX",
    "SECRET_HEADER",
    "ActionAnswerQuestion",
    "ActionCaptureOrderNumber",
    "ActionChooseOption",
    "ActionFeedback",
    "ActionHandoff",
    "ActionKeepWithBot",
    "ActionLeaveMessage",
    "ActionNoneOfThese",
    "KnowledgeClient",
    "Services",
    "build_executor",
    "create_router",
]
