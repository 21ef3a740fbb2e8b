"""Run Rasa 3.6 (``rasa run …``) with its per-message hot spots fixed, jieba loaded.

Run by path with the Rasa virtualenv's interpreter, never imported by kefu (it needs ``rasa``)::

    .venv-rasa/bin/python bot/rasa/serve.py run --enable-api ...

Profiled (py-spy) with one shopper at a time, three functions of Rasa took most of its CPU; each
replacement gives the same results as Rasa's own code (tests/bot/rasa/test_serve.py):

- every action response is checked with ``jsonschema.validate(result, schema)``, which checks
  the constant schema against its meta-schema first, on every call: half of Rasa's CPU on a new
  conversation. The schema check and the validator are now made once; and as the schema says
  each event is ``oneOf`` some twenty event shapes, each told apart by its ``event`` name, an
  event is checked against its own shape only (the same verdict: 12 % of Rasa's CPU went to
  trying the other shapes). An invalid response still raises jsonschema's error, as before.
- `RedisTrackerStore.save` merges the stored tracker with the one in hand by comparing every new
  event's ``as_dict()`` with every stored event's (quadratic): 80 % of Rasa's CPU 120 turns into
  a conversation (190 ms a message). `merge_trackers` keeps the rule, comparing only events with
  the same timestamp.
- reading a stored tracker resolves each event's class by walking every `Event` subclass
  (`Event.resolve_by_type`): a quarter of what was left 300 turns in. `resolve_by_type` uses a
  table.
- every call to the action endpoint opens a new aiohttp session, so a new TCP connection
  (`EndpointConfig.request`). `pooled_request` is the same request on one pooled session per
  endpoint, whose idle connections close before the gateway's (uvicorn keeps them 5 s).
- every action call carries the tracker with every event of the conversation
  (`RemoteAction._action_call_format`, ``EventVerbosity.ALL``): the JSON grows with the
  conversation, on both sides. kefu's actions read the latest message and the slots, which are
  sent as before; `action_call_format` sends only the events of the current turn (from the
  latest user message on).

- every graph run (the NLU parse, and each policy prediction: three a message) goes through
  dask's scheduler, which orders the graph again every time (`DaskGraphRunner.run`): a tenth of
  Rasa's CPU. `run_graph` runs the same nodes with the same inputs, in an order computed once
  per set of targets.

The Redis tracker and lock stores are replaced, not patched: ``bot/rasa/stores.py``.

``serve.py --metrics-port N run …`` serves Prometheus metrics of this process on
``http://127.0.0.1:N/metrics`` (prometheus_client's own server, loopback only, whatever
``--interface`` Rasa listens on): every HTTP request Rasa answers by route, the calls to the
action endpoint, and the process' CPU, memory and garbage collector.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import time
from collections import defaultdict
from typing import Any

import aiohttp
import jsonschema
import prometheus_client
import rasa
import rasa.core.run
from jsonschema import exceptions
from rasa.__main__ import main
from rasa.core.actions.action import RemoteAction
from rasa.core.constants import DEFAULT_REQUEST_TIMEOUT
from rasa.core.tracker_store import RedisTrackerStore
from rasa.engine.exceptions import GraphRunError
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.shared.constants import DOCS_BASE_URL
from rasa.shared.core.events import Event, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker, EventVerbosity
from rasa.shared.exceptions import FileNotFoundException
from rasa.shared.utils.common import all_subclasses
from rasa.utils.endpoints import ClientResponseError, EndpointConfig, concat_url

_SCHEMA = RemoteAction.action_response_format_spec()
_VALIDATOR_CLASS: Any = jsonschema.validators.validator_for(_SCHEMA)
_VALIDATOR_CLASS.check_schema(_SCHEMA)  # once, where Rasa did it per response
_VALIDATOR = _VALIDATOR_CLASS(_SCHEMA)


_EVENT_SCHEMA: dict[str, Any] = _SCHEMA["properties"]["events"]["items"]
_EVENT_BASE = {key: value for key, value in _EVENT_SCHEMA.items() if key != "oneOf"}
_EVENT_VALIDATORS: dict[str, Any] = {
    shape["properties"]["event"]["const"]: _VALIDATOR_CLASS({**_EVENT_BASE, "allOf": [shape]})
    for shape in _EVENT_SCHEMA["oneOf"]
}
_SHELL_VALIDATOR = _VALIDATOR_CLASS(
    {**_SCHEMA, "properties": {**_SCHEMA["properties"], "events": {"type": "array"}}})


def valid_action_result(result: Any) -> bool:
    """The whole schema's verdict on ``result``, each event checked against its own shape only.

    Every ``oneOf`` branch of the event schema fixes ``event`` to a different name, and ``event``
    is required, so an event can only match the branch of its own name: the event is valid
    exactly when that branch exists and accepts it.
    """
    if not _SHELL_VALIDATOR.is_valid(result):
        return False
    for event in result.get("events") or []:
        kind = event.get("event") if isinstance(event, dict) else None
        validator = _EVENT_VALIDATORS.get(kind) if isinstance(kind, str) else None
        if validator is None or not validator.is_valid(event):
            return False
    return True


def validate_action_result(_self: RemoteAction, result: dict[str, Any]) -> bool:
    """`RemoteAction._validate_action_result` with the validator built once, events by shape."""
    if valid_action_result(result):
        return True
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


_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HTTP_SECONDS = prometheus_client.Histogram(
    "kefu_rasa_http_seconds", "Requests Rasa answered, by route template, method and status "
    "class (the REST channel is /webhooks/rest/webhook).", ["route", "method", "status"],
    buckets=_LATENCY)
ACTION_SECONDS = prometheus_client.Histogram(
    "kefu_rasa_action_call_seconds", "Rasa's calls to the action endpoint (the gateway), by "
    "outcome (ok, error).", ["outcome"], buckets=_LATENCY)


async def _request_started(request: Any) -> None:
    request.ctx.kefu_started = time.perf_counter()


async def _request_done(request: Any, response: Any) -> None:
    started = getattr(request.ctx, "kefu_started", None)
    if started is None:
        return
    route = getattr(getattr(request, "route", None), "path", None) or "unmatched"
    status = f"{int(getattr(response, 'status', 500)) // 100}xx"
    HTTP_SECONDS.labels("/" + route.lstrip("/"), request.method, status).observe(
        time.perf_counter() - started)


_configure_app = rasa.core.run.configure_app


def configure_app(*args: Any, **kwargs: Any) -> Any:
    """Rasa's `configure_app`, its Sanic app timing every request (:data:`HTTP_SECONDS`)."""
    app = _configure_app(*args, **kwargs)
    app.register_middleware(_request_started, "request")
    app.register_middleware(_request_done, "response")
    return app


def serve_metrics(argv: list[str]) -> list[str]:
    """Start the /metrics server if ``argv`` asks (``--metrics-port N``); the rest of argv."""
    if "--metrics-port" not in argv:
        return argv
    at = argv.index("--metrics-port")
    prometheus_client.start_http_server(int(argv[at + 1]), addr="127.0.0.1")
    return argv[:at] + argv[at + 2:]


KEEPALIVE_SECONDS = 4.0  # below uvicorn's 5 s, so the gateway never closes one we are reusing
_SESSIONS: dict[tuple[int, int], aiohttp.ClientSession] = {}


def _pooled_session(endpoint: EndpointConfig) -> aiohttp.ClientSession:
    """One session per endpoint and event loop, with Rasa's headers, auth and timeout."""
    key = (id(endpoint), id(asyncio.get_running_loop()))
    session = _SESSIONS.get(key)
    if session is None or session.closed:
        auth = (aiohttp.BasicAuth(endpoint.basic_auth["username"],
                                  endpoint.basic_auth["password"])
                if endpoint.basic_auth else None)
        session = aiohttp.ClientSession(
            headers=endpoint.headers, auth=auth,
            timeout=aiohttp.ClientTimeout(total=DEFAULT_REQUEST_TIMEOUT),
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_SECONDS))
        _SESSIONS[key] = session
    return session


async def pooled_request(self: EndpointConfig, method: str = "post", subpath: str | None = None,
                         content_type: str | None = "application/json", compress: bool = False,
                         **kwargs: Any) -> Any:
    """`EndpointConfig.request` on a pooled session instead of a new one per call."""
    headers = {}
    if content_type:
        headers["Content-Type"] = content_type
    headers.update(kwargs.pop("headers", {}))
    headers.update(self.headers)
    sslcontext = None
    if self.cafile:
        try:
            sslcontext = ssl.create_default_context(cafile=self.cafile)
        except FileNotFoundError as e:
            raise FileNotFoundException(f"Failed to find certificate file '{self.cafile}'") from e
    started, outcome = time.perf_counter(), "error"
    try:
        async with _pooled_session(self).request(
            method, concat_url(self.url, subpath), headers=headers,
            params=self.combine_parameters(kwargs), compress=compress, ssl=sslcontext, **kwargs,
        ) as response:
            if response.status >= 400:
                raise ClientResponseError(response.status, response.reason,
                                          await response.content.read())
            outcome = "ok"
            try:
                return await response.json()
            except aiohttp.ContentTypeError:
                return None
    finally:
        ACTION_SECONDS.labels(outcome).observe(time.perf_counter() - started)


def action_call_format(self: RemoteAction, tracker: DialogueStateTracker,
                       domain: Any) -> dict[str, Any]:
    """`RemoteAction._action_call_format` with only the current turn's events in the tracker."""
    state = tracker.current_state(EventVerbosity.NONE)
    state["events"] = [event.as_dict() for event in current_turn(tracker)]
    result: dict[str, Any] = {"next_action": self._name, "sender_id": tracker.sender_id,
                              "tracker": state, "version": rasa.__version__}
    if (not self._is_selective_domain_enabled()
            or domain.does_custom_action_explicitly_need_domain(self.name())):
        result["domain"] = domain.as_dict()
    return result


def current_turn(tracker: DialogueStateTracker) -> list[Event]:
    """The events from the latest user message on (all of them if there is none)."""
    events = list(tracker.events)
    for index in range(len(events) - 1, -1, -1):
        if isinstance(events[index], UserUttered):
            return events[index:]
    return events


def run_graph(self: DaskGraphRunner, inputs: dict[str, Any] | None = None,
              targets: list[str] | None = None) -> dict[str, Any]:
    """`DaskGraphRunner.run` without dask: the same nodes, called in an order made once.

    As in dask's graph, each node is called with the results of the nodes it needs (a node's
    result is its ``(name, output)`` pair, an input's is ``(name, value)``), and a need that is
    neither a node nor an input is passed as the plain string.
    """
    run_targets = targets if targets else self._graph_schema.target_names
    plans: dict[tuple[str, ...], list[tuple[str, list[str]]]] = self.__dict__.setdefault(
        "_kefu_plans", {})
    plan = plans.get(tuple(run_targets))
    if plan is None:
        plan = plans[tuple(run_targets)] = _plan(self._graph_schema, run_targets)
    values: dict[str, Any] = {}
    for name, value in (inputs or {}).items():
        if isinstance(value, str) and value in self._graph_schema.nodes:
            raise GraphRunError(f"Input value '{value}' clashes with a node name. Make sure "
                                f"that none of the input names passed to the `run` method are "
                                f"the same as node names in the graph schema.")
        values[name] = (name, value)
    try:
        for name, needs in plan:
            if name not in values:  # an input of the same name replaces the node, as in dask
                values[name] = self._instantiated_nodes[name](
                    *(values.get(need, need) for need in needs))
    except RuntimeError as e:
        raise GraphRunError("Error running runner.") from e
    return dict(values[target] for target in run_targets)


def _plan(schema: Any, targets: list[str]) -> list[tuple[str, list[str]]]:
    """The targets' nodes and everything they need, each after what it needs."""
    nodes = schema.minimal_graph_schema(targets).nodes
    order: list[tuple[str, list[str]]] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in nodes:
            return
        seen.add(name)
        needs = list(nodes[name].needs.values())
        for need in needs:
            visit(need)
        order.append((name, needs))

    for target in targets:
        visit(target)
    return order


def warm_up() -> None:
    """Load jieba's dictionary now: Rasa leaves it to the first message, which then waits ~0.7 s."""
    import jieba

    jieba.setLogLevel(60)  # its "Loading model cost …" lines are not errors
    jieba.initialize()


RemoteAction._validate_action_result = validate_action_result
RemoteAction._action_call_format = action_call_format
EndpointConfig.request = pooled_request
DaskGraphRunner.run = run_graph
RedisTrackerStore._merge_trackers = staticmethod(merge_trackers)
Event.resolve_by_type = staticmethod(resolve_by_type)
rasa.core.run.configure_app = configure_app

if __name__ == "__main__":
    sys.argv = ["rasa", *serve_metrics(sys.argv[1:])]
    if sys.argv[1:2] == ["run"]:
        warm_up()
    sys.exit(main())
