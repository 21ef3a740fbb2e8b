"""Plain rules without Redis: service hours, group inference, summaries, event visibility."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from handoff.context import infer_group, summarise
from handoff.messages import closed, queued, rating_buttons
from handoff.models import (
    EventType,
    HandoffEvent,
    HandoffReason,
    Priority,
    TicketStatus,
    TransferRequest,
)
from handoff.settings import HandoffSettings
from kefu.accounts import Agent, AgentRole
from kefu.conversation import BotAnalysis, CandidateScore, Role, Turn

NOW = datetime(2026, 6, 18, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


def shanghai(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 6, 18, (hour - 8) % 24, minute, tzinfo=UTC)


@pytest.mark.parametrize(("hours", "at", "expected"), [
    ("00:00-24:00", shanghai(3), True),
    ("09:00-22:00", shanghai(9), True),
    ("09:00-22:00", shanghai(21, 59), True),
    ("09:00-22:00", shanghai(22), False),
    ("09:00-22:00", shanghai(8, 59), False),
    ("09:00-12:00,13:30-18:00", shanghai(12, 30), False),
    ("09:00-12:00,13:30-18:00", shanghai(14), True),
    ("20:00-02:00", shanghai(1), True),
    ("20:00-02:00", shanghai(12), False),
])
def test_service_hours(hours: str, at: datetime, expected: bool) -> None:
    assert HandoffSettings(service_hours=hours).in_service_hours(at) is expected


@pytest.mark.parametrize("hours", ["9-5", "09:00-25:00", "nine to five", "09:60-10:00"])
def test_bad_service_hours_are_refused(hours: str) -> None:
    with pytest.raises(ValidationError):
        HandoffSettings(service_hours=hours)


def analysis(category: str | None) -> BotAnalysis:
    return BotAnalysis(at=NOW, text="?", category=category)


def test_group_follows_the_latest_known_category() -> None:
    groups = ["presale", "aftersale", "logistics"]
    assert infer_group([analysis("logistics"), analysis("payment")], groups, "presale") == "aftersale"
    assert infer_group([analysis("logistics"), analysis(None)], groups, "presale") == "logistics"
    assert infer_group([analysis("product")], groups, "aftersale") == "presale"
    assert infer_group([], groups, "presale") == "presale"
    assert infer_group([analysis("logistics")], ["presale"], "presale") == "presale"


def test_summary_is_one_short_line() -> None:
    turns = [Turn(role=Role.SHOPPER, text="快递三天没动了\n怎么回事", at=NOW),
             Turn(role=Role.SHOPPER, text="/human", at=NOW)]
    line = summarise(HandoffReason.EXPLICIT_REQUEST, turns, {"order_number": "E1"})
    assert line == "快递三天没动了 怎么回事 · 要求人工 · 订单 E1"


def test_summary_says_what_the_shopper_needs_from_the_last_real_question() -> None:
    said = ["鞋子脏了怎么洗", "/choose_option{\"entry_id\":\"care\"}", "转人工"]
    turns = [Turn(role=Role.SHOPPER, text=t, at=NOW) for t in said]
    analyses = [
        BotAnalysis(at=NOW, text="鞋子脏了怎么洗", intent="ask_question", decision="clarify",
                    candidates=[CandidateScore(entry_id="care", question="洗鞋方法", score=0.5)]),
        BotAnalysis(at=NOW, text=said[1], intent="choose_option", decision="answer",
                    entry_id="care"),
        BotAnalysis(at=NOW, text="转人工", intent="request_human", decision="handoff"),
    ]
    line = summarise(HandoffReason.REPEATED_FAILURE, turns, {}, analyses, "2 次澄清未解决")
    assert line == "鞋子脏了怎么洗 · 2 次澄清未解决"
    # only "转人工", no question yet: the reason alone
    assert summarise(HandoffReason.EXPLICIT_REQUEST, turns[2:], {}, analyses[2:]) == "要求人工"
    long = summarise(HandoffReason.COMPLAINT, [Turn(role=Role.SHOPPER, text="差" * 500, at=NOW)], {})
    assert len(long) == 120 and long.endswith("…")


def test_priority_ranks() -> None:
    assert sorted(Priority, key=lambda p: p.rank) == [Priority.URGENT, Priority.HIGH, Priority.NORMAL]


def test_events_reach_the_right_consoles() -> None:
    event = HandoffEvent(type=EventType.TICKET_WAITING, ticket_id="t", conversation_id="web:a",
                         group="logistics", status=TicketStatus.WAITING, priority=Priority.NORMAL,
                         previous_agent="old", at=NOW)

    def agent(name: str, groups: list[str], role: AgentRole = AgentRole.AGENT) -> Agent:
        return Agent(username=name, display_name=name, groups=groups, role=role, created_at=NOW)

    assert event.visible_to(agent("a", ["logistics"]))
    assert not event.visible_to(agent("b", ["presale"]))
    assert event.visible_to(agent("old", ["presale"]))
    assert event.visible_to(agent("m", ["presale"], AgentRole.MANAGER))


def test_transfer_body_needs_exactly_one_target() -> None:
    assert TransferRequest(group="presale").group == "presale"
    with pytest.raises(ValidationError):
        TransferRequest()
    with pytest.raises(ValidationError):
        TransferRequest(group="presale", agent="li")


def test_shopper_messages() -> None:
    assert queued("zh", 1, 30) == "正在为您转接人工客服，您是下一位，预计等待约 1 分钟。"
    assert queued("en", 4, 600) == "Connecting you to an agent: 3 ahead of you, about 10 min."
    assert "\n" in queued(None, 2, 60)  # unknown language: both
    assert "智能助手" in closed("zh", return_to_bot=True)
    assert "智能助手" not in closed("zh", return_to_bot=False)
    assert rating_buttons()[0].payload == '/rate{"score":1}'
