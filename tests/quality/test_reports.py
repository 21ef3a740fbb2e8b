"""Every report figure against a small history worked out by hand.

One day in the shop (Asia/Shanghai), 2026-12-07:

=====  =========================================================================================
web:a  10:00 asks, the bot answers (有帮助/没帮助), "helpful" — contained, answered
web:b  10:05 asks, answered, "not helpful" (wrong); 10:06 handed off (repeated failure, aftersale),
       claimed by li 10:08, shopper 10:08:30, li replies 10:09:30, shopper 10:10, resolved 10:16,
       rated 2
web:c  11:00 "我要投诉" (alert complaint-threat); 11:00 handed off (complaint, presale), claimed by
       wu 11:01, replies 11:01:30, resolved 11:05, rated 5
web:d  13:00 says hello; then two questions the knowledge decision hands off, both nearest to
       "退款多久到账" (refund-time)
web:e  13:30 asks for a person (explicit request), leaves the queue 13:31 (cancelled)
=====  =========================================================================================

By hand: conversations 5 (10h: 2, 11h: 1, 13h: 2); handed off 3 → containment 2/5 = 0.4; answered 2,
wrong 1 (b) → 0.5; handoffs repeated_failure 1, complaint 1, explicit_request 1 (10h, 11h, 13h);
closed 2 (e was cancelled). Waits b 120 s, c 60 s → p50 60, p95 120 (nearest rank of 2 values:
ranks 1 and 2). First response from the handoff: b 210 s, c 90 s → 90 / 210. Resolution b 600 s,
c 300 s → 300 / 600. Messages after the handoff: b 3, c 1 → 1 / 3; aftersale 3, presale 1.
CSAT 2: 1, 5: 1, response 2/2 = 1. Alerts: complaint-threat 1. b broke the first-reply limit
(90 s > 60 s). Top answered: returns 1, care-shoes 1; top unanswered topic: refund-time 2.

By group and agent (the tickets each closed or had cancelled that day; a, d are bot-only, in no
group): aftersale b, e → conversations 2, containment undefined, answered 1 (b), wrong 1 → 1.0,
handoffs repeated_failure 1 (10h), explicit_request 1 (13h), no alerts; presale c → conversations
1, answered 0 → wrong share undefined, complaint 1 (11h), complaint-threat 1; li: b, like aftersale
without e; wu: c, like presale; logistics: nothing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Awaitable
from datetime import date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis

from handoff.models import HandoffReason
from handoff.service import HandoffService
from kefu.accounts import Agent, AgentRole, Presence
from kefu.conversation import BotAnalysis, Button, CandidateScore, ConversationStore, Role
from kefu.errors import NotAuthorized
from quality.export import aggregate_rows, records_csv
from quality.monitor import QualityMonitor
from quality.reports import Reports, nearest_rank
from quality.service import QualityService
from quality.store import QualityStore
from tests.handoff.conftest import PASSWORD, make_settings
from tests.quality.conftest import Clock

pytestmark = pytest.mark.redis

DAY = date(2026, 12, 7)
ZONE = ZoneInfo("Asia/Shanghai")
T = TypeVar("T")
ANSWER_BUTTONS = [Button(title="有帮助 👍", payload="/feedback_helpful"),
                  Button(title="没帮助", payload="/feedback_not_helpful")]


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2026, 12, 7, hh, mm, ss, tzinfo=ZONE)


class History:
    """The service, monitor and clock the history is played through (wired like the app)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.clock = Clock()
        conversations = ConversationStore(redis)
        self.service = HandoffService(redis, conversations, make_settings(), clock=self.clock)
        self.reports = Reports(redis, conversations, timezone="Asia/Shanghai",
                               groups=list(self.service.settings.groups))
        self.monitor = QualityMonitor(QualityStore(redis), self.service, reports=self.reports,
                                      clock=self.clock)
        conversations.observers.append(self.monitor.observe)
        conversations.analysis_observers.append(self.monitor.on_analysis)
        self.service.events.observers.append(self.monitor.on_event)
        self.quality = QualityService(self.monitor, self.service, clock=self.clock)
        self.tickets: dict[str, str] = {}

    async def say(self, conv: str, role: Role, text: str, when: datetime, **kw: Any) -> None:
        self.clock.now = when
        await self.service.conversations.append(conv, role, text, at=when, **kw)
        await self.monitor.drain()

    async def decided(self, conv: str, text: str, decision: str, when: datetime,
                      entry: tuple[str, str] | None = None) -> None:
        candidates = [CandidateScore(entry_id=entry[0], question=entry[1], score=0.5)] \
            if entry else []
        await self.service.conversations.record_analysis(conv, BotAnalysis(
            at=when, text=text, decision=decision, candidates=candidates,
            entry_id=entry[0] if entry and decision == "answer" else None))
        await self.monitor.drain()

    async def agent(self, name: str, groups: list[str], role: AgentRole = AgentRole.AGENT
                    ) -> Agent:
        await self.service.agents.add(name, PASSWORD, groups, role=role)
        return await self.service.agents.set_presence(name, Presence.ONLINE)

    async def step(self, when: datetime, action: Awaitable[T]) -> T:
        self.clock.now = when
        result = await action
        await self.monitor.drain()
        return result


@pytest.fixture
async def history(redis: aioredis.Redis) -> AsyncIterator[History]:
    yield await play_the_day(redis)


async def play_the_day(redis: aioredis.Redis) -> History:
    """The day of the module docstring, played through the services."""
    h = History(redis)
    await h.monitor.refresh_rules(force=True)
    li = await h.agent("li", ["aftersale"])
    wu = await h.agent("wu", ["presale"])
    await h.agent("boss", ["aftersale", "presale", "logistics"], AgentRole.MANAGER)
    s = h.service
    await h.say("web:a", Role.SHOPPER, "鞋子怎么洗", at(10, 0))
    await h.decided("web:a", "鞋子怎么洗", "answer", at(10, 0), ("care-shoes", "鞋子怎么洗"))
    await h.say("web:a", Role.BOT, "手洗，阴干。", at(10, 0, 1), buttons=ANSWER_BUTTONS)
    await h.say("web:a", Role.SHOPPER, "/feedback_helpful", at(10, 0, 20))

    await h.say("web:b", Role.SHOPPER, "怎么退货", at(10, 5))
    await h.decided("web:b", "怎么退货", "answer", at(10, 5), ("returns", "怎么退货"))
    await h.say("web:b", Role.BOT, "订单页申请售后。", at(10, 5, 1), buttons=ANSWER_BUTTONS)
    await h.say("web:b", Role.SHOPPER, "/feedback_not_helpful", at(10, 5, 30))
    b = await h.step(at(10, 6), s.request_handoff(
        "web:b", reason=HandoffReason.REPEATED_FAILURE, channel="web", group="aftersale"))
    await h.step(at(10, 8), s.claim(b.id, li))
    await h.say("web:b", Role.SHOPPER, "在吗", at(10, 8, 30), meta={"ticket_id": b.id})
    await h.step(at(10, 9, 30), s.reply(b.id, li, "您好，马上处理"))
    await h.say("web:b", Role.SHOPPER, "好的", at(10, 10), meta={"ticket_id": b.id})
    await h.step(at(10, 16), s.resolve(b.id, li))
    await h.step(at(10, 17), s.rate("web:b", 2))

    await h.say("web:c", Role.SHOPPER, "我要投诉", at(11, 0))
    c = await h.step(at(11, 0), s.request_handoff(
        "web:c", reason=HandoffReason.COMPLAINT, channel="web", group="presale"))
    await h.step(at(11, 1), s.claim(c.id, wu))
    await h.step(at(11, 1, 30), s.reply(c.id, wu, "非常抱歉"))
    await h.step(at(11, 5), s.resolve(c.id, wu))
    await h.step(at(11, 6), s.rate("web:c", 5))

    await h.say("web:d", Role.SHOPPER, "你好", at(13, 0))
    await h.decided("web:d", "钱啥时候回来", "handoff", at(13, 0), ("refund-time", "退款多久到账"))
    await h.decided("web:d", "我的钱呢", "handoff", at(13, 1), ("refund-time", "退款多久到账"))
    await h.decided("web:d", "你好", "clarify", at(13, 2), ("greeting", "你好"))  # not counted
    await h.say("web:e", Role.SHOPPER, "转人工", at(13, 30))
    await h.step(at(13, 30, 1), s.request_handoff(
        "web:e", reason=HandoffReason.EXPLICIT_REQUEST, channel="web", group="aftersale"))
    await h.step(at(13, 31), s.cancel("web:e"))
    h.tickets = {"b": b.id, "c": c.id}
    return h


def test_nearest_rank() -> None:
    assert [nearest_rank(2, 0.5), nearest_rank(2, 0.95)] == [0, 1]
    assert [nearest_rank(20, 0.5), nearest_rank(20, 0.95), nearest_rank(1, 0.95)] == [9, 18, 0]


async def test_store_figures(history: History) -> None:
    r = await history.reports.report(DAY)
    assert (r.conversations, r.handed_off, r.containment) == (5, 3, 0.4)
    assert (r.answered, r.wrong, r.wrong_share) == (2, 1, 0.5)
    assert r.handoffs_by_reason == {"repeated_failure": 1, "complaint": 1, "explicit_request": 1}
    assert r.hourly_conversations[10:14] == [2, 1, 0, 2] and sum(r.hourly_conversations) == 5
    assert r.hourly_handoffs[10:14] == [1, 1, 0, 1]
    assert r.closed == 2
    assert (r.wait.n, r.wait.p50, r.wait.p95) == (2, 60, 120)
    assert (r.first_response.p50, r.first_response.p95) == (90, 210)
    assert (r.resolution.p50, r.resolution.p95) == (300, 600)
    assert (r.length.p50, r.length.p95) == (1, 3)
    assert r.length_by_group["aftersale"].p50 == 3 and r.length_by_group["presale"].p50 == 1
    assert r.length_by_group["logistics"].n == 0
    assert r.csat == {"1": 0, "2": 1, "3": 0, "4": 0, "5": 1} and r.csat_response_rate == 1.0
    assert r.alerts_by_rule == {"complaint-threat": 1}
    assert [(t.entry_id, t.question, t.count) for t in r.top_answered] == [
        ("returns", "怎么退货", 1), ("care-shoes", "鞋子怎么洗", 1)]
    assert [(t.entry_id, t.question, t.count) for t in r.top_unanswered] == [
        ("refund-time", "退款多久到账", 2)]


async def test_group_and_agent_figures(history: History) -> None:
    li = await history.reports.report(DAY, "a:li")
    assert (li.closed, li.wait.p50, li.first_response.p50, li.csat["2"]) == (1, 120, 210, 1)
    presale = await history.reports.report(DAY, "g:presale")
    assert (presale.closed, presale.resolution.p95, presale.csat["5"]) == (1, 300, 1)
    assert (await history.reports.report(DAY, "g:logistics")).csat_response_rate is None


async def test_every_figure_obeys_a_group_or_agent(history: History) -> None:
    r = history.reports
    aftersale = await r.report(DAY, "g:aftersale")
    assert (aftersale.conversations, aftersale.handed_off, aftersale.containment) == (2, 2, None)
    assert (aftersale.answered, aftersale.wrong, aftersale.wrong_share) == (1, 1, 1.0)
    assert aftersale.handoffs_by_reason == {"repeated_failure": 1, "explicit_request": 1}
    assert aftersale.alerts_by_rule == {}
    assert aftersale.hourly_handoffs[10:14] == [1, 0, 0, 1] and sum(aftersale.hourly_handoffs) == 2
    assert aftersale.hourly_conversations == aftersale.hourly_handoffs
    assert aftersale.closed == 1  # e was cancelled: a handoff of the group, but not closed
    presale = await r.report(DAY, "g:presale")
    assert (presale.conversations, presale.answered, presale.wrong_share) == (1, 0, None)
    assert presale.handoffs_by_reason == {"complaint": 1}
    assert presale.alerts_by_rule == {"complaint-threat": 1}
    assert presale.hourly_handoffs[11] == 1 and sum(presale.hourly_handoffs) == 1
    li = await r.report(DAY, "a:li")
    assert (li.conversations, li.wrong_share, li.handoffs_by_reason, li.alerts_by_rule) == (
        1, 1.0, {"repeated_failure": 1}, {})
    wu = await r.report(DAY, "a:wu")
    assert (wu.conversations, wu.handoffs_by_reason, wu.alerts_by_rule) == (
        1, {"complaint": 1}, {"complaint-threat": 1})
    empty = await r.report(DAY, "g:logistics")
    assert (empty.conversations, empty.wrong_share, empty.handoffs_by_reason) == (0, None, {})
    assert set(empty.store_wide) == {"top_answered", "top_unanswered", "length_by_group"}
    assert presale.top_unanswered == (await r.report(DAY)).top_unanswered  # store-wide, said so
    assert (await r.report(DAY)).store_wide == []


async def test_a_scopes_drill_downs_list_its_own_conversations(history: History) -> None:
    q, boss = history.quality, await history.service.agents.get("boss")

    async def convs(figure: str) -> list[str]:
        return sorted(i.conversation_id for i in await q.drill(boss, DAY, figure))

    assert await convs("handed:g:aftersale") == ["web:b", "web:e"]
    assert await convs("wrong:g:aftersale") == ["web:b"] and await convs("wrong:g:presale") == []
    assert await convs("handoff:complaint:g:presale") == ["web:c"]
    assert await convs("handoff:complaint:g:aftersale") == []
    assert await convs("alerts:complaint-threat:a:wu") == ["web:c"]
    assert await convs("closed:a:li") == ["web:b"] and await convs("csat:2:a:li") == ["web:b"]
    assert await convs("csat:5:a:li") == [] and await convs("csat:5:g:presale") == ["web:c"]


async def test_scoped_figures_match_the_store_when_summed(history: History) -> None:
    store = await history.reports.report(DAY)
    groups = [await history.reports.report(DAY, f"g:{g}") for g in history.reports.groups]
    assert sum(g.handed_off for g in groups) == store.handed_off
    for reason, n in store.handoffs_by_reason.items():
        assert sum(g.handoffs_by_reason.get(reason, 0) for g in groups) == n


async def test_qa_records(history: History) -> None:
    b, c = await history.reports.records(DAY)
    assert (b.ticket_id, b.agent, b.rating, b.messages) == (history.tickets["b"], "li", 2, 3)
    assert b.bot_wrong_before and b.over_limits == ["first-reply"] and b.rules_hit == []
    assert (c.rules_hit, c.bot_wrong_before, c.over_limits) == (["complaint-threat"], False, [])
    assert (c.wait_seconds, c.first_response_seconds, c.resolution_seconds) == (60, 90, 300)
    assert [r.ticket_id for r in await history.reports.records(DAY, scope="a:wu")] == [c.ticket_id]


async def test_drill_down(history: History) -> None:
    q, boss = history.quality, await history.service.agents.get("boss")
    convs = {i.conversation_id for i in await q.drill(boss, DAY, "convs")}
    assert convs == {"web:a", "web:b", "web:c", "web:d", "web:e"}
    assert [i.conversation_id for i in await q.drill(boss, DAY, "wrong")] == ["web:b"]
    assert [i.conversation_id for i in await q.drill(boss, DAY, "handoff:complaint")] == ["web:c"]
    [one] = await q.drill(boss, DAY, "csat:2")
    assert one.conversation_id == "web:b" and one.record is not None and one.record.rating == 2
    longest = await q.drill(boss, DAY, "wait:store")
    assert [i.conversation_id for i in longest] == ["web:b", "web:c"]  # largest first


async def test_review_and_who_sees_what(history: History) -> None:
    q, service = history.quality, history.service
    boss, li = await service.agents.get("boss"), await service.agents.get("li")
    reviewed = await q.review(boss, history.tickets["b"], 3, "道歉及时，但没查物流")
    assert (reviewed.review_score, reviewed.reviewed_by) == (3, "boss")
    mine = await q.records(li, DAY, "store")  # an agent gets their own, whatever they ask
    assert [r.review_comment for r in mine] == ["道歉及时，但没查物流"]
    with pytest.raises(NotAuthorized):
        await q.records(li, DAY, "a:wu")
    with pytest.raises(NotAuthorized):
        await q.review(li, history.tickets["b"], 5, "")


async def test_counting_is_idempotent(history: History) -> None:
    s = history.service
    ticket = await s.get(history.tickets["b"])
    await history.reports.ticket_opened(ticket)  # a replayed event changes nothing
    await history.reports.ticket_closed(ticket, [])
    r = await history.reports.report(DAY)
    assert (r.handed_off, r.closed, r.wait.n, r.handoffs_by_reason["repeated_failure"]) == \
        (3, 2, 2, 1)


async def test_csv_matches_the_api(history: History) -> None:
    records = await history.reports.records(DAY)
    rows = list(csv.DictReader(io.StringIO(records_csv(records).lstrip("\ufeff"))))
    assert [r["ticket_id"] for r in rows] == [r.ticket_id for r in records]
    assert rows[0]["rating"] == "2" and rows[0]["bot_wrong_before"] == "1"
    assert rows[1]["rules_hit"] == "complaint-threat" and rows[1]["wait_seconds"] == "60.0"
    table = {(f, k): v for f, k, v in aggregate_rows(await history.reports.report(DAY))[1:]}
    assert table[("containment", "")] == "0.4" and table[("wait", "p95")] == "120.0"
    assert table[("handoffs_by_reason", "complaint")] == "1"
    presale = await history.reports.report(DAY, "g:presale")
    scoped = {(f, k): v for f, k, v in aggregate_rows(presale)[1:]}
    assert scoped[("conversations", "")] == "1" and scoped[("containment", "")] == ""
    assert scoped[("handoffs_by_reason", "complaint")] == "1"
    assert ("handoffs_by_reason", "repeated_failure") not in scoped
    assert scoped[("store_wide", "top_answered")] == "1"


async def test_another_day_is_empty(history: History) -> None:
    r = await history.reports.report(DAY + timedelta(days=1))
    assert (r.conversations, r.closed, r.containment, r.wait.p50) == (0, 0, None, None)
