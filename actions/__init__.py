"""Rasa custom actions of kefu, served by ``python -m rasa_sdk --actions actions``.

Thin on purpose: each action reads the tracker, calls one service (the gateway's knowledge API,
the conversation record, the handoff service) and writes to the dispatcher.
"""

from actions.actions import (
    ActionAnswerQuestion,
    ActionCaptureOrderNumber,
    ActionChooseOption,
    ActionFeedback,
    ActionHandoff,
)
from actions.services import Services, build_services

__all__ = [
    "ActionAnswerQuestion",
    "ActionCaptureOrderNumber",
    "ActionChooseOption",
    "ActionFeedback",
    "ActionHandoff",
    "Services",
    "build_services",
]
