"""Run Rasa 3.6 (``rasa run …``) with its action-response check compiled once.

Run by path with the Rasa virtualenv's interpreter, never imported by kefu (it needs ``rasa``)::

    .venv-rasa/bin/python bot/rasa/serve.py run --enable-api ...

Rasa 3.6 validates every action server response with ``jsonschema.validate(result, schema)``,
which checks the constant schema against its meta-schema before checking the response, on every
call. Profiled under the load benchmark that was half of the Rasa server's CPU time per shopper
message (benchmarks/results/load.json). The response is still validated, against the same schema
and raising the same error; only the schema check and the validator construction happen once.
"""

from __future__ import annotations

import sys
from typing import Any

import jsonschema
from jsonschema import exceptions
from rasa.__main__ import main
from rasa.core.actions.action import RemoteAction
from rasa.shared.constants import DOCS_BASE_URL

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


RemoteAction._validate_action_result = validate_action_result

if __name__ == "__main__":
    sys.argv[0] = "rasa"
    sys.exit(main())
