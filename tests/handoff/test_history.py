"""The console's history: resolved chats found by shopper, order number, words and date, read-only,
and reopened when the shopper writes again within a day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from handoff.errors import TicketStateError
from handoff.history import HistoryQuery, matches
from handoff.models import HandoffReason, TicketStatus, shopper_label
from handoff.service import HandoffService
from kefu.accounts import AgentRole
from kefu.conversation import ConversationStore, Role
from kefu.errors import NotAuthorized
from tests.handoff.conftest import AgentFactory, make_settings, open_ticket, seed_conversation

pytestmark = pytest.mark.redis


class Clock:
    """The handoff service's clock, moved forward by the test (the transcript keeps real time)."""

    def __init__(self) -> None:
        self.ahead = timedelta()

    @property
    def now(self) -> datetime:
        return datetime.now(UTC) + self.ahead

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def timed(redis: aioredis.Redis, clock: Clock) -> HandoffService:
    return HandoffService(redis, ConversationStore(redis), make_settings(), clock=clock)


async def handled(service: HandoffService, conv: str, agent_name: str, *, reply: str,
                  note: str, rating: int | None = None) -> str:
    """A chat handed off, claimed by ``agent_name``, answered, resolved (and rated)."""
    agent = await service.agents.get(agent_name)
    ticket = await open_ticket(service, conv)
    await service.claim(ticket.id, agent)
    await service.add_shopper_message(conv, "你好，在吗")
    await service.reply(ticket.id, agent, reply)
    await service.resolve(ticket.id, agent, note=note)
    if rating:
        await service.rate(conv, rating)
    return ticket.id


def test_visitors_get_a_stable_label() -> None:
    label = shopper_label("web:w4f55411d2eda", "web", None)
    assert label.startswith("网页访客 #") and len(label) == len("网页访客 #1234")
    assert label == shopper_label("web:w4f55411d2eda", "web", None)
    assert shopper_label("telegram:42", "telegram", "Alice Wang") == "Alice Wang"
    assert shopper_label("telegram:42", "telegram", None).startswith("Telegram 用户 #")


def test_matching_ignores_case_spaces_and_order_dashes() -> None:
    assert matches("2026-1120-1234-5", ["订单 2026112012345"])
    assert matches("sf 123", ["顺丰 SF123 已发出"])
    assert not matches("退款", ["换货"])
    assert matches("", [])


async def test_search_by_shopper_order_words_and_date(timed: HandoffService, clock: Clock,
                                                      make_agent: AgentFactory) -> None:
    await make_agent("li", ["aftersale"])
    await seed_conversation(timed, "web:zhang", shopper="退款还没到账")  # 小明, E20240611001
    first = await handled(timed, "web:zhang", "li", reply="已为您催促财务，1-3 个工作日到账",
                          note="催退款", rating=5)
    today = clock.now.date()
    clock.ahead = timedelta(days=3)
    await seed_conversation(timed, "web:wang", shopper="鞋子开胶了")
    await timed.conversations.set_profile("web:wang", channel="web", display_name="")
    await timed.conversations.set_slot("web:wang", "order_number", "2026112012345")
    second = await handled(timed, "web:wang", "li", reply="请拍照，我们安排换新", note="开胶换新")
    li = await timed.agents.get("li")

    everything = await timed.history(li, HistoryQuery())
    assert [i.ticket.id for i in everything] == [second, first]  # newest first
    assert everything[1].ticket.rating == 5 and everything[1].ticket.resolution_note == "催退款"

    async def found(text: str = "", **dates: date) -> list[str]:
        since = until = None
        if "since" in dates:
            since = datetime.combine(dates["since"], datetime.min.time(), UTC)
        if "until" in dates:
            until = datetime.combine(dates["until"], datetime.min.time(), UTC)
        items = await timed.history(li, HistoryQuery(text=text, since=since, until=until))
        return [i.ticket.id for i in items]

    assert await found("小明") == [first]  # the shopper's name
    label = shopper_label("web:wang", "web", None)
    assert await found(label.split()[-1]) == [second]  # "#1234", the visitor label
    assert await found("2026-1120-1234-5") == [second]  # order number as typed
    assert await found("E20240611001") == [first]
    assert await found("财务") == [first]  # the agent's reply (the human part)
    assert await found("开胶") == [second]  # the bot part and the note
    assert await found(since=today + timedelta(days=2)) == [second]
    assert await found(until=today + timedelta(days=2)) == [first]
    assert await found("没有这句话") == []


async def test_agents_see_their_groups_and_managers_all(
        service: HandoffService, make_agent: AgentFactory) -> None:
    await make_agent("li", ["aftersale"])
    await make_agent("pre", ["presale"])
    boss = await make_agent("boss", ["presale"], role=AgentRole.MANAGER)
    await seed_conversation(service, "web:a")
    ticket_id = await handled(service, "web:a", "li", reply="好的", note="ok")
    pre = await service.agents.get("pre")
    assert await service.history(pre, HistoryQuery()) == []
    with pytest.raises(NotAuthorized):
        await service.history_item(ticket_id, pre)
    assert [i.ticket.id for i in await service.history(boss, HistoryQuery())] == [ticket_id]


async def test_the_shopper_writes_again_within_a_day_the_chat_is_reopened(
        timed: HandoffService, clock: Clock, make_agent: AgentFactory) -> None:
    li = await make_agent("li", ["aftersale"])
    await seed_conversation(timed, "web:back")
    old_id = await handled(timed, "web:back", "li", reply="已处理", note="退款已处理", rating=4)
    item = await timed.history_item(old_id, li)
    assert (item.wrote_again_at, item.can_reopen) == (None, False)
    with pytest.raises(TicketStateError):
        await timed.reopen(old_id, li)

    clock.ahead = timedelta(hours=5)
    again = clock.now
    await timed.conversations.append("web:back", Role.SHOPPER, "还是没到账啊", at=again)
    item = await timed.history_item(old_id, li)
    assert (item.wrote_again_at, item.can_reopen) == (again, True)

    reopened = await timed.reopen(old_id, li)
    assert (reopened.status, reopened.agent, reopened.reopened_from, reopened.reason) == \
        (TicketStatus.CLAIMED, "li", old_id, HandoffReason.REOPENED)
    assert reopened.context.summary == "还是没到账啊 · 结束后又来消息，已重新打开"
    assert (await timed.open_ticket("web:back")) == reopened
    told = await timed.conversations.sent_to_shopper("web:back")
    assert told[-1].text.startswith("客服 客服li 已重新接入")
    assert told[-1].meta["status"] == {"state": "serving", "agent": "客服li"}
    old = await timed.get(old_id)
    assert (old.status, old.rating) == (TicketStatus.RETURNED, 4)  # the first chat stays as it was
    with pytest.raises(TicketStateError):
        await timed.reopen(old_id, li)  # open again already


async def test_a_message_more_than_a_day_later_is_a_new_chat(
        timed: HandoffService, clock: Clock, make_agent: AgentFactory) -> None:
    li = await make_agent("li", ["aftersale"])
    await seed_conversation(timed, "web:late")
    old_id = await handled(timed, "web:late", "li", reply="已处理", note="ok")
    clock.ahead = timedelta(days=2)
    again = clock.now
    await timed.conversations.append("web:late", Role.SHOPPER, "又有问题", at=again)
    item = await timed.history_item(old_id, li)
    assert item.wrote_again_at == again and not item.can_reopen
    with pytest.raises(TicketStateError):
        await timed.reopen(old_id, li)
