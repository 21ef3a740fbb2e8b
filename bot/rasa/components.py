"""kefu's NLU component for Rasa 3.6: the reply language as an entity, without an action call.

Rasa's responses (greetings, thanks, fallback) are Chinese unless the ``language`` slot says
``en``. The slot used to be filled by a custom slot-mapping action, a second action server call
on every message (the tracker sent over HTTP, the response validated); now `LanguageExtractor`
adds a ``language`` entity while Rasa parses the message, and the slot maps from it. A message
without letters (digits, emoji, a button payload) gets no entity, so the slot keeps the
conversation's language. Runs in the Rasa venv (``config.yml`` names it); the rule itself is
`kefu.language`, shared with the actions.
"""

from __future__ import annotations

from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import (
    ENTITIES,
    ENTITY_ATTRIBUTE_END,
    ENTITY_ATTRIBUTE_START,
    ENTITY_ATTRIBUTE_TYPE,
    ENTITY_ATTRIBUTE_VALUE,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message

from kefu.language import detect_language

ENTITY = "language"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False)
class LanguageExtractor(GraphComponent, EntityExtractorMixin):  # type: ignore[misc]
    """Adds a ``language`` entity (``zh`` or ``en``) to every message that has letters."""

    @classmethod
    def create(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> LanguageExtractor:
        """See `GraphComponent`."""
        return cls()

    def process(self, messages: list[Message]) -> list[Message]:
        """Add the entity to each message whose text shows a language."""
        for message in messages:
            text = message.get(TEXT) or ""
            language = detect_language(text)
            if language is None:
                continue
            entity = {ENTITY_ATTRIBUTE_TYPE: ENTITY, ENTITY_ATTRIBUTE_VALUE: language.value,
                      ENTITY_ATTRIBUTE_START: 0, ENTITY_ATTRIBUTE_END: len(text)}
            message.set(ENTITIES, message.get(ENTITIES, []) + self.add_extractor_name([entity]),
                        add_to_output=True)
        return messages
