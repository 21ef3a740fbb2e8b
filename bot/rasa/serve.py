"""Run Rasa 3.6 (``rasa run …``) with three of its per-message hot spots fixed, jieba loaded.

Run by path with the Rasa virtualenv's interpreter, never imported by kefu (it needs ``rasa``)::

    .venv-rasa/bin/python bot/rasa/serve.py run --enable-api ...

Profiled (py-spy) with one shopper at a time, three functions of Rasa took most of its CPU; each
replacement gives the same results as Rasa's own code (tests/bot/rasa/test_serve.py):

- every action server response is checked with ``jsonschema.validate(result, schema)``, which
  checks the constant schema against its meta-schema first, on every call: half of Rasa's CPU
  on a new conversation. The response is still validated, against the same schema, raising the
  same error; the schema check and the validator are made once.
- `RedisTrackerStore.save` merges the stored tracker with the one in hand by comparing every new
  event's ``as_dict()`` with every stored event's (quadratic): 80 % of Rasa's CPU 120 turns into
  a conversation (190 ms a message). `merge_trackers` keeps the rule, comparing only events with
  the same timestamp.
- reading a stored tracker resolves each event's class by walking every `Event` subclass
  (`Event.resolve_by_type`): a quarter of what was left 300 turns in. `resolve_by_type` uses a
  table.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from typing import Any

import jsonschema
from jsonschema import exceptions
from rasa.__main__ import main
from rasa.core.actions.action import RemoteAction
from rasa.core.tracker_store import RedisTrackerStore
from rasa.shared.constants import DOCS_BASE_URL
from rasa.shared.core.events import Event
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.utils.common import all_subclasses

_SCHEMA = RemoteAction.action_response_format_spec()
_VALIDATOR_CLASS: Any = jsonschema.validators.validator_for(_SCHEMA)
_VALIDATOR_CLASS.check_schema(_SCHEMA)  # once, where Rasa did it per response
_VALIDATOR = _VALIDATOR_CLASS(_SCHEMA)


def validate_action_result(_self: RemoteAction, result: dict[str, Any]) -> bool:
    """`RemoteAction._validate_action_result` with the validator built once."""
    error = exceptions.best_match(_VALIDATOR.iter_errors(result))  # as jsonschema.validate
    if error is None:
        return True
    error.message += (
        ". Failed to validate Action server response from API, make sure your response from "
        f"the Action endpoint is valid. For more information about the format visit "
        f"{DOCS_BASE_URL}/custom-actions"
    )
    raise error


def merge_trackers(
    prior_tracker: DialogueStateTracker, tracker: DialogueStateTracker
) -> DialogueStateTracker:
    """`RedisTrackerStore._merge_trackers` in linear time (same result).

    Rasa adds a new event when its ``as_dict()`` differs from every event already merged. Every
    ``as_dict()`` holds the event's timestamp, so only events with the same timestamp can be
    equal: the comparison is made within those (usually one), not against the whole tracker.
    """
    if not prior_tracker.events:
        return tracker
    last_event_timestamp = prior_tracker.events[-1].timestamp
    past_tracker = tracker.travel_back_in_time(target_time=last_event_timestamp)
    if past_tracker.events == prior_tracker.events:
        return tracker
    merged = tracker.init_copy()
    merged.update_with_events(list(prior_tracker.events), override_timestamp=False, domain=None)
    at_time: dict[float, list[Event]] = defaultdict(list)
    for event in merged.events:
        at_time[event.timestamp].append(event)
    for new_event in tracker.events:
        same_time = at_time[new_event.timestamp]
        as_dict = new_event.as_dict()
        if all(as_dict != existing.as_dict() for existing in same_time):
            merged.update(new_event)
            same_time.append(new_event)
    return merged


_EVENT_TYPES: dict[str, type[Event]] = {}


def resolve_by_type(type_name: str, default: type[Event] | None = None) -> type[Event] | None:
    """`Event.resolve_by_type` from a table instead of a walk of every Event subclass per event.

    Reading a tracker from Redis resolves the type of each of its events; the walk was a quarter of
    Rasa's CPU 300 turns into a conversation. The table is rebuilt when a name is missing (an
    event class imported later), and the first subclass with a name wins, as in the walk.
    """
    found = _EVENT_TYPES.get(type_name)
    if found is None:
        _EVENT_TYPES.clear()
        for subclass in all_subclasses(Event):
            _EVENT_TYPES.setdefault(subclass.type_name, subclass)
        found = _EVENT_TYPES.get(type_name)
    if found is not None:
        return found
    if type_name == "topic":
        return None  # Rasa's backwards compatibility with old TopicSet events
    if default is not None:
        return default
    raise ValueError(f"Unknown event name '{type_name}'.")


def warm_up() -> None:
    """Load jieba's dictionary now: Rasa leaves it to the first message, which then waits ~0.7 s."""
    import jieba

    jieba.setLogLevel(60)  # its "Loading model cost …" lines are not errors
    jieba.initialize()


RemoteAction._validate_action_result = validate_action_result
RedisTrackerStore._merge_trackers = staticmethod(merge_trackers)
Event.resolve_by_type = staticmethod(resolve_by_type)

if __name__ == "__main__":
    sys.argv[0] = "rasa"
    if sys.argv[1:2] == ["run"]:
        warm_up()
    sys.exit(main())
