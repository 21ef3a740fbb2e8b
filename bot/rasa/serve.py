"""Run Rasa 3.6 (``rasa run …``) with two of its per-message costs made linear.

Run by path with the Rasa virtualenv's interpreter, never imported by kefu (it needs ``rasa``)::

    .venv-rasa/bin/python bot/rasa/serve.py run --enable-api ...

Profiled (py-spy) with one shopper at a time, two functions of Rasa took most of its CPU:

- every action server response is checked with ``jsonschema.validate(result, schema)``, which
  checks the constant schema against its meta-schema first, on every call: half of Rasa's CPU
  on a new conversation. The response is still validated, against the same schema, raising the
  same error; the schema check and the validator are made once.
- `RedisTrackerStore.save` merges the stored tracker with the one in hand by comparing every new
  event's ``as_dict()`` with every stored event's (quadratic): 80 % of Rasa's CPU 120 turns into
  a conversation (190 ms a message). The merge below keeps the same rule (an event is added when
  no event already in the merged tracker has the same ``as_dict()``) with a set of canonical JSON
  keys instead of a scan.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import jsonschema
from jsonschema import exceptions
from rasa.__main__ import main
from rasa.core.actions.action import RemoteAction
from rasa.core.tracker_store import RedisTrackerStore
from rasa.shared.constants import DOCS_BASE_URL
from rasa.shared.core.events import Event
from rasa.shared.core.trackers import DialogueStateTracker

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


def _event_key(event: Event) -> str:
    return json.dumps(event.as_dict(), sort_keys=True, default=str)


def merge_trackers(
    prior_tracker: DialogueStateTracker, tracker: DialogueStateTracker
) -> DialogueStateTracker:
    """`RedisTrackerStore._merge_trackers` in linear time (same result)."""
    if not prior_tracker.events:
        return tracker
    last_event_timestamp = prior_tracker.events[-1].timestamp
    past_tracker = tracker.travel_back_in_time(target_time=last_event_timestamp)
    if past_tracker.events == prior_tracker.events:
        return tracker
    merged = tracker.init_copy()
    merged.update_with_events(list(prior_tracker.events), override_timestamp=False, domain=None)
    seen = {_event_key(e) for e in merged.events}
    for new_event in tracker.events:
        key = _event_key(new_event)
        if key not in seen:
            merged.update(new_event)
            seen.add(key)
    return merged


RemoteAction._validate_action_result = validate_action_result
RedisTrackerStore._merge_trackers = staticmethod(merge_trackers)

if __name__ == "__main__":
    sys.argv[0] = "rasa"
    sys.exit(main())
