"""Run with the Rasa venv's interpreter: bot/rasa/stores.py against a real Redis and Rasa's own store.

``python rasa_stores_check.py REDIS_URL MODEL`` prints one JSON object; tests/bot/rasa/test_stores.py
reads it. MODEL (the trained Rasa model) predicts on full and bounded sessions. Not collected by pytest (it imports ``rasa``, which only the Rasa venv has).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any
from urllib.parse import urlparse

import redis
from rasa.core.lock_store import LockError
from rasa.core.tracker_store import RedisTrackerStore
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
from rasa.utils.endpoints import EndpointConfig

from bot.rasa.stores import KefuLockStore, KefuTrackerStore

URL = urlparse(sys.argv[1])
SYNC = redis.Redis(host=URL.hostname, port=URL.port, db=0, decode_responses=True)
DOMAIN = Domain.empty()


def turn(t: float, text: str) -> list[Event]:
    return [UserUttered(text, {"name": "greet", "confidence": 0.9}, timestamp=t),
            ActionExecuted("utter_greet", timestamp=t + 0.1),
            BotUttered(f"re: {text}", {}, timestamp=t + 0.2),
            ActionExecuted("action_listen", timestamp=t + 0.3)]


def session(t: float) -> list[Event]:
    return [ActionExecuted("action_session_start", timestamp=t), SessionStarted(timestamp=t + 0.01),
            ActionExecuted("action_listen", timestamp=t + 0.02)]


def dicts(tracker: DialogueStateTracker | None) -> list[dict[str, Any]]:
    return [e.as_dict() for e in tracker.events] if tracker is not None else []


def evalsha_calls() -> int:
    stats = SYNC.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def store() -> KefuTrackerStore:
    return KefuTrackerStore(DOMAIN, host=URL.hostname, port=URL.port, db=0, record_exp=3600,
                            key_prefix="kefu")


async def tracker_cases() -> dict[str, Any]:
    out: dict[str, Any] = {}
    kefu = store()
    key = "kefu:tracker:web:alice"
    fresh = DialogueStateTracker.from_events("web:alice", session(0) + turn(1, "hi"))
    await kefu.save(fresh)  # a tracker the store did not read: written whole
    read = await kefu.retrieve("web:alice")
    out["round_trip"] = dicts(read) == dicts(fresh)
    assert read is not None
    for event in turn(2, "again"):
        read.update(event)
    before = evalsha_calls()
    await kefu.save(read)
    out["save_calls"] = evalsha_calls() - before
    out["after_append"] = {"stored": SYNC.llen(key), "events": len(read.events),
                           "same": dicts(await kefu.retrieve("web:alice")) == dicts(read),
                           "ttl": SYNC.ttl(key)}
    before = evalsha_calls()
    await kefu.retrieve("web:alice")
    out["retrieve_calls"] = evalsha_calls() - before

    # a new session replaces the stored one
    for event in session(100) + turn(101, "later"):
        read.update(event)
    await kefu.save(read)
    later = await kefu.retrieve("web:alice")
    out["new_session"] = {"stored": SYNC.llen(key), "session": len(session(100) + turn(101, "x")),
                          "same": dicts(later) == dicts(read)[-7:]}

    # two holders of the same conversation: the second save merges instead of losing events
    first, second = await kefu.retrieve("web:alice"), await kefu.retrieve("web:alice")
    assert first is not None and second is not None
    for event in turn(200, "one"):
        first.update(event)
    for event in turn(300, "two"):
        second.update(event)
    await kefu.save(first)
    await kefu.save(second)
    texts = [e.text for e in (await kefu.retrieve("web:alice")).events
             if isinstance(e, UserUttered)]
    out["conflict_texts"] = texts

    # a conversation Rasa's own store wrote is read the old way and rewritten as a list
    rasa = RedisTrackerStore(DOMAIN, host=URL.hostname, port=URL.port, db=0, key_prefix="kefu")
    legacy = DialogueStateTracker.from_events("web:old", session(0) + turn(1, "a")
                                              + session(50) + turn(51, "b"))
    await rasa.save(legacy)
    theirs = await rasa.retrieve("web:old")
    ours = await kefu.retrieve("web:old")
    out["legacy_read"] = dicts(ours) == dicts(theirs) and len(dicts(ours)) == 7
    assert ours is not None
    for event in turn(52, "c"):
        ours.update(event)
    await kefu.save(ours)
    out["legacy_saved"] = {"type": SYNC.type("kefu:tracker:web:old"),
                           "same": dicts(await kefu.retrieve("web:old")) == dicts(ours)}
    out["missing"] = await kefu.retrieve("web:nobody") is None
    out["keys"] = sorted(await kefu.keys())
    return out


def lock_store() -> KefuLockStore:
    return KefuLockStore(EndpointConfig(url=URL.hostname, port=URL.port, db=0, key_prefix="kefu",
                                        type="bot.rasa.stores.KefuLockStore"))


async def lock_cases() -> dict[str, Any]:
    out: dict[str, Any] = {}
    locks = lock_store()
    order: list[str] = []

    holding = asyncio.Event()

    async def hold(name: str, conversation: str, seconds: float) -> None:
        async with locks.lock(conversation):
            order.append(f"{name}+")
            holding.set()
            await asyncio.sleep(seconds)
            order.append(f"{name}-")

    first = asyncio.create_task(hold("a", "web:bob", 0.3))
    await holding.wait()
    second = asyncio.create_task(hold("b", "web:bob", 0.0))
    await asyncio.sleep(0.05)
    other = asyncio.create_task(hold("c", "web:carol", 0.0))
    await asyncio.gather(first, second, other)
    out["order"] = order
    out["key_gone"] = SYNC.exists("kefu:lock:web:bob") == 0

    before = evalsha_calls()
    async with locks.lock("web:dave"):
        pass
    out["calls"] = evalsha_calls() - before

    # a ticket that outlives its lifetime lets the next one in; the late waiter is told
    SYNC.set("kefu:lock:web:erin", '{"conversation_id": "web:erin", "tickets": []}')  # Rasa's
    async with locks.lock("web:erin", lock_lifetime=0.3):
        out["legacy_replaced"] = SYNC.type("kefu:lock:web:erin")
    stuck = locks.lock("web:frank", lock_lifetime=0.2)
    await stuck.__aenter__()  # never released, as by a crashed Rasa
    started = time.monotonic()
    async with locks.lock("web:frank", lock_lifetime=5):
        out["waited_for_expiry"] = round(time.monotonic() - started, 1)
    errors = []
    blocker = locks.lock("web:gina", lock_lifetime=5)
    await blocker.__aenter__()
    try:
        async with locks.lock("web:gina", lock_lifetime=0.1):
            pass
    except LockError as exc:
        errors.append(str(exc))
    await blocker.__aexit__(None, None, None)
    out["expired_waiter"] = errors
    return out


RULES = {"greet": "utter_greet", "ask_question": "action_answer_question",
         "feedback_helpful": "action_feedback", "choose_option": "action_choose_option",
         "give_order_number": "action_capture_order_number", "thank": "utter_thank"}


def long_session(turns: int) -> list[Event]:
    events = session(0)
    for i in range(turns):
        intent = list(RULES)[i % len(RULES)]
        t = 1.0 + i
        events.append(UserUttered(f"m{i}", {"name": intent, "confidence": 0.9}, timestamp=t))
        events.append(ActionExecuted(RULES[intent], timestamp=t + 0.1))
        if intent == "ask_question":
            events.append(SlotSet("last_entry_id", f"e{i}", timestamp=t + 0.2))
        if intent == "give_order_number" and i < 10:  # set early, must survive the bound
            events.append(SlotSet("order_number", f"12345678901234567{i}", timestamp=t + 0.2))
        events.append(SlotSet("language", "en" if i % 3 else "zh", timestamp=t + 0.25))
        events.append(BotUttered(f"re {i}", {}, timestamp=t + 0.3))
        events.append(ActionExecuted("action_listen", timestamp=t + 0.4))
    return events


async def bounded_cases(model: str) -> dict[str, Any]:
    from rasa.core.agent import Agent
    from rasa.engine.constants import PLACEHOLDER_TRACKER

    agent = Agent.load(model)
    runner, target = agent.processor.graph_runner, agent.processor.model_metadata.core_target
    kefu = KefuTrackerStore(agent.domain, host=URL.hostname, port=URL.port, db=0,
                            key_prefix="kefu", max_session_events=200)
    full = DialogueStateTracker.from_events("web:long", long_session(150), agent.domain.slots)
    await kefu.save(full)
    stored = await kefu.retrieve("web:long")
    assert stored is not None
    out: dict[str, Any] = {"events": [len(full.events), len(stored.events)],
                           "slots_same": stored.current_slot_values() == full.current_slot_values()}
    same_predictions = []
    for intent in [*agent.domain.intents, "nlu_fallback"]:
        predicted = []
        for tracker in (full, stored):
            copy = tracker.copy()
            copy.update(UserUttered("next", {"name": intent, "confidence": 0.9}, timestamp=999))
            prediction = runner.run({PLACEHOLDER_TRACKER: copy}, [target])[target]
            probabilities = list(prediction.probabilities)
            predicted.append((prediction.policy_name,
                              probabilities.index(max(probabilities)), max(probabilities)))
        same_predictions.append(predicted[0] == predicted[1])
    out["predictions"] = same_predictions
    # the bound holds as the conversation goes on, a turn at a time
    longer = long_session(160)
    for event in longer[len(long_session(150)):]:
        stored.update(event)
        if isinstance(event, ActionExecuted) and event.action_name == "action_listen":
            await kefu.save(stored)
    later = await kefu.retrieve("web:long")
    assert later is not None
    expected = DialogueStateTracker.from_events("web:long", longer, agent.domain.slots)
    out.update({"stored_after_10_more_turns": SYNC.llen("kefu:tracker:web:long"),
                "later_slots_same": later.current_slot_values() == expected.current_slot_values(),
                "order_number": later.get_slot("order_number"),
                "latest": later.latest_message.text if later.latest_message else None})
    return out


async def main() -> dict[str, Any]:
    SYNC.flushdb()
    return {"tracker": await tracker_cases(), "lock": await lock_cases(),
            "bounded": await bounded_cases(sys.argv[2])}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
