"""Run with the Rasa venv's interpreter: compares bot/rasa/serve.py's patches with Rasa's own code.

Prints one JSON object; tests/bot/rasa/test_serve.py reads it. Not collected by pytest (it
imports ``rasa``, which only the Rasa venv has).
"""

from __future__ import annotations

import asyncio
import json
import runpy
import sys
from pathlib import Path
from typing import Any

from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction
from rasa.core.agent import Agent
from rasa.core.tracker_store import RedisTrackerStore
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    Event,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.utils.common import all_subclasses
from rasa.utils.endpoints import EndpointConfig

ORIGINAL_MERGE = RedisTrackerStore._merge_trackers
ORIGINAL_VALIDATE = RemoteAction._validate_action_result
ORIGINAL_RESOLVE = Event.resolve_by_type
ORIGINAL_CALL_FORMAT = RemoteAction._action_call_format
ORIGINAL_RUN = DaskGraphRunner.run
serve = runpy.run_path(str(Path(sys.argv[1])), run_name="kefu_rasa_serve")  # applies the patches


def turn(t: float, text: str, slot: str | None = None) -> list[Event]:
    events: list[Event] = [
        UserUttered(text, {"name": "greet", "confidence": 0.9}, timestamp=t),
        ActionExecuted("utter_greet", timestamp=t + 0.1),
        BotUttered(f"re: {text}", {"buttons": [{"title": "ok", "payload": "/affirm"}]},
                   timestamp=t + 0.2),
        ActionExecuted("action_listen", timestamp=t + 0.3),
    ]
    if slot is not None:
        events.insert(2, SlotSet("language", slot, timestamp=t + 0.15))
    return events


def session(t: float) -> list[Event]:
    return [ActionExecuted("action_session_start", timestamp=t), SessionStarted(timestamp=t + 0.01),
            ActionExecuted("action_listen", timestamp=t + 0.02)]


def tracker(events: list[Event]) -> DialogueStateTracker:
    return DialogueStateTracker.from_events("web:alice", events)


def dicts(t: DialogueStateTracker) -> list[dict[str, Any]]:
    return [e.as_dict() for e in t.events]


def merge_cases() -> dict[str, Any]:
    first = session(0) + [e for i in range(30) for e in turn(1 + i, f"q{i}", "en" if i % 7 else None)]
    second = session(100) + [e for i in range(5) for e in turn(101 + i, f"r{i}")]
    new = turn(200, "new", "zh")
    cases = {
        # what save() meets: the stored tracker holds every session, the one in hand the last
        "last session + new turn": (tracker(first + second), tracker(second + new)),
        "whole tracker + new turn": (tracker(first + second), tracker(first + second + new)),
        "nothing stored": (tracker([]), tracker(first)),
        "repeated texts": (tracker(first), tracker(session(300) + turn(301, "q1") + turn(302, "q1"))),
    }
    out: dict[str, Any] = {}
    for name, (prior, hand) in cases.items():
        theirs, ours = ORIGINAL_MERGE(prior, hand), serve["merge_trackers"](prior, hand)
        out[name] = {"same": dicts(theirs) == dicts(ours), "events": len(ours.events)}
    out["sizes"] = {"first": len(first), "second": len(second), "new": len(new)}
    return out


def validation_cases() -> dict[str, Any]:
    action = RemoteAction("action_answer_question", None)
    good = {"events": [{"event": "slot", "name": "language", "value": "en", "timestamp": None}],
            "responses": [{"text": "hi", "buttons": []}]}
    bad = {"events": [{"event": "slot", "name": 3}], "responses": "nope"}
    out: dict[str, Any] = {"good": [ORIGINAL_VALIDATE(action, good),
                                    serve["validate_action_result"](action, good)]}
    messages = []
    for validate in (ORIGINAL_VALIDATE, serve["validate_action_result"]):
        try:
            validate(action, bad)
            messages.append(None)
        except ValidationError as exc:
            messages.append(exc.message)
    out["bad"] = messages
    out["patched"] = RemoteAction._validate_action_result is serve["validate_action_result"]
    out["verdicts"] = verdicts()
    return out


RESULTS = [
    {"events": [], "responses": []},
    {"events": [{"event": "slot", "name": "a", "value": [1, {"b": None}], "timestamp": 1.5},
                {"event": "bot", "text": "hi", "data": {"buttons": []}, "metadata": {}},
                {"event": "action", "name": "utter_x", "policy": None, "confidence": 1},
                {"event": "user", "text": "x", "parse_data": {"intent": {"name": "greet"},
                                                               "entities": []}},
                {"event": "followup", "name": "action_x"}, {"event": "session_started"}],
     "responses": [{"text": "a", "buttons": [{"title": "t", "payload": "/p"}]}]},
    {"responses": [{"text": "no events key"}]},
    {},
    {"events": "not a list"},
    {"events": [{"event": "slot", "name": "a"}]},  # no value
    {"events": [{"event": "slot", "name": 3, "value": 1}]},
    {"events": [{"event": "no_such_event"}]},
    {"events": [{"name": "no event key"}]},
    {"events": [{"event": 7}]},
    {"events": [{"event": ["slot"]}]},
    {"events": [None]},
    {"events": [{"event": "slot", "name": "a", "value": 1, "timestamp": "now"}]},
    {"events": [{"event": "bot", "metadata": "not an object"}]},
    {"events": [{"event": "user", "parse_data": {"entities": [{"entity": "x"}]}}]},
    {"events": [{"event": "entities", "entities": [{"entity": "e", "value": 1, "start": "0"}]}]},
    {"events": [{"event": "action", "hide_rule_turn": "yes"}]},
    {"events": [], "responses": "nope"},
    {"events": [], "responses": [1]},
    [],
]


def verdicts() -> list[list[Any]]:
    """For each result: Rasa's verdict and error, then serve.py's."""
    action = RemoteAction("action_answer_question", None)
    out = []
    for result in RESULTS:
        pair: list[Any] = []
        for validate in (ORIGINAL_VALIDATE, serve["validate_action_result"]):
            try:
                pair.append(validate(action, result))
            except ValidationError as exc:
                pair.append(exc.message)
        out.append(pair)
    return out


def resolve_cases() -> dict[str, Any]:
    names = sorted({c.type_name for c in all_subclasses(Event)})
    ours = serve["resolve_by_type"]
    same = [ORIGINAL_RESOLVE(n) is ours(n) for n in names]
    unknown = []
    for resolve in (ORIGINAL_RESOLVE, ours):
        try:
            resolve("no_such_event")
            unknown.append("returned")
        except ValueError as exc:
            unknown.append(str(exc))
    return {
        "names": len(names), "same": all(same),
        "topic": [ORIGINAL_RESOLVE("topic"), ours("topic")],
        "default": [ORIGINAL_RESOLVE("x", SlotSet) is SlotSet, ours("x", SlotSet) is SlotSet],
        "unknown": unknown, "patched": Event.resolve_by_type is ours,
    }


def call_format_cases() -> dict[str, Any]:
    events = session(0) + [e for i in range(20) for e in turn(1 + i, f"q{i}", "en")]
    events += [UserUttered("now", {"name": "ask_question", "confidence": 0.8}, timestamp=50),
               SlotSet("language", "zh", timestamp=50.1)]
    domain = Domain.from_dict({"slots": {"language": {"type": "text", "mappings": []}},
                               "actions": ["action_answer_question"]})
    tracker = DialogueStateTracker.from_events("web:alice", events, domain.slots)
    selective = EndpointConfig("http://x/webhook", enable_selective_domain=True)
    out: dict[str, Any] = {"patched": RemoteAction._action_call_format is serve["action_call_format"]}
    for name, endpoint in (("selective", selective), ("full", EndpointConfig("http://x/webhook"))):
        action = RemoteAction("action_answer_question", endpoint)
        theirs = ORIGINAL_CALL_FORMAT(action, tracker, domain)
        ours = serve["action_call_format"](action, tracker, domain)
        their_events, our_events = theirs["tracker"].pop("events"), ours["tracker"].pop("events")
        out[name] = {"same_otherwise": theirs == ours, "domain": "domain" in ours,
                     "events": [len(their_events), len(our_events)],
                     "ours_are_the_turn": our_events == their_events[-2:],
                     "bytes": [len(json.dumps(theirs)) + len(json.dumps(their_events)),
                               len(json.dumps(ours)) + len(json.dumps(our_events))]}
    return out


async def pooled_case() -> dict[str, Any]:
    from aiohttp import web

    peers: list[Any] = []
    secrets: list[str | None] = []

    async def handle(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        secrets.append(request.headers.get("X-Secret"))
        return web.json_response({"events": [], "responses": [{"text": "ok"}]})

    app = web.Application()
    app.router.add_post("/webhook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    endpoint = EndpointConfig(f"http://127.0.0.1:{port}/webhook", headers={"X-Secret": "s"})
    answers = [await endpoint.request(json={"n": i}, method="post") for i in range(5)]
    await runner.cleanup()
    return {"answers": answers == [{"events": [], "responses": [{"text": "ok"}]}] * 5,
            "connections": len(set(peers)), "secrets": secrets,
            "patched": EndpointConfig.request is serve["pooled_request"]}


def graph_cases(model: str) -> dict[str, Any]:
    """The trained model's NLU and policy graphs run by dask and by serve.py's runner."""
    from rasa.core.channels.channel import UserMessage
    from rasa.engine.constants import PLACEHOLDER_MESSAGE, PLACEHOLDER_TRACKER

    agent = Agent.load(model)
    runner, metadata = agent.processor.graph_runner, agent.processor.model_metadata
    texts = ["你好", "买错尺码了可以换吗", "how long does shipping take?", "转人工",
             "订单号123456789012345678", '/choose_option{"entry_id":"care-shoes"}', "第二个", "🙂"]
    parses = []
    for text in texts:
        results = []
        for run in (ORIGINAL_RUN, serve["run_graph"]):
            tracker = DialogueStateTracker.from_events("web:alice", session(0), agent.domain.slots)
            out = run(runner, {PLACEHOLDER_MESSAGE: [UserMessage(text)],
                               PLACEHOLDER_TRACKER: tracker}, [metadata.nlu_target])
            parsed = out[metadata.nlu_target][0]
            results.append(json.dumps(parsed.as_dict(only_output_properties=True),
                                      sort_keys=True, default=str))
        parses.append(results[0] == results[1] and '"intent"' in results[0])
    predictions = []
    for events in (session(0), session(0) + turn(1, "hi"), session(0) + turn(1, "x", "en")):
        tracker = DialogueStateTracker.from_events("web:alice", events, agent.domain.slots)
        pair = []
        for run in (ORIGINAL_RUN, serve["run_graph"]):
            prediction = run(runner, {PLACEHOLDER_TRACKER: tracker},
                             [metadata.core_target])[metadata.core_target]
            pair.append([prediction.policy_name, list(prediction.probabilities)])
        predictions.append(pair[0] == pair[1])
    return {"parses": parses, "predictions": predictions,
            "patched": DaskGraphRunner.run is serve["run_graph"]}


def warm_up_case() -> dict[str, bool]:
    import jieba

    before = bool(jieba.dt.initialized)
    serve["warm_up"]()
    return {"before": before, "after": bool(jieba.dt.initialized)}


if __name__ == "__main__":
    warm_up = warm_up_case()  # before the model loads jieba
    print(json.dumps({"merge": merge_cases(), "validate": validation_cases(),
                      "resolve": resolve_cases(), "call_format": call_format_cases(),
                      "pooled": asyncio.run(pooled_case()), "warm_up": warm_up,
                      "graph": graph_cases(sys.argv[2])}))
