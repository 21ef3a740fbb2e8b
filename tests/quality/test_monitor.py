"""Every message checked as it is kept; block and warn; time limits; over a real Redis."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from handoff.models import HandoffReason, TicketStatus
from handoff.service import HandoffService
from kefu.accounts import AgentRole
from kefu.conversation import Role
from kefu.keys import qa_events_channel
from quality.errors import MessageBlocked
from quality.models import EventKind
from quality.monitor import QualityMonitor
from quality.store import decode
from tests.handoff.conftest import AgentFactory, open_ticket, seed_conversation
from tests.quality.conftest import Clock

pytestmark = pytest.mark.redis


async def test_an_angry_shopper_alerts_with_the_ticket(
        monitor: QualityMonitor, service: HandoffService, make_agent: AgentFactory) -> None:
    li = await make_agent("li", ["aftersale"])
    await seed_conversation(service, "web:wang")
    ticket = await open_ticket(service, "web:wang", reason=HandoffReason.COMPLAINT)
    await service.claim(ticket.id, li)
    await service.add_shopper_message("web:wang", "再不退款我就打12315投诉！！！")
    await monitor.drain()
    alerts = await monitor.store.alerts()
    assert {a.rule_id for a in alerts} == {"complaint-threat", "punctuation"}
    alert = next(a for a in alerts if a.rule_id == "complaint-threat")
    assert (alert.ticket_id, alert.group, alert.agent) == (ticket.id, "aftersale", "li")
    assert alert.role is Role.SHOPPER and alert.matched in ("12315", "投诉")
    assert alert.anger is not None and alert.anger < 0.5  # the toy model sees no angry word


async def test_a_bot_conversation_is_checked_too(monitor: QualityMonitor,
                                                 service: HandoffService) -> None:
    await service.conversations.append("web:zhao", Role.SHOPPER, "我真的受够了")
    await monitor.drain()
    [alert] = await monitor.store.alerts()
    assert alert.rule_id == "angry-model" and alert.ticket_id is None
    assert alert.anger is not None and alert.anger > 0.9


async def test_one_alert_per_rule_and_chat_while_quiet(monitor: QualityMonitor,
                                                       service: HandoffService) -> None:
    for text in ("差评！", "我要给差评", "still a bad review"):
        await service.conversations.append("web:qian", Role.SHOPPER, text)
    await service.conversations.append("web:sun", Role.SHOPPER, "差评")
    await monitor.drain()
    alerts = await monitor.store.alerts()
    assert sorted(a.conversation_id for a in alerts) == ["web:qian", "web:sun"]


async def test_alerts_are_published_live(monitor: QualityMonitor, service: HandoffService,
                                         redis: aioredis.Redis) -> None:
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(qa_events_channel())
    await service.conversations.append("web:li", Role.SHOPPER, "你们是骗子")
    await monitor.drain()
    message = None
    for _ in range(20):  # the subscribe confirmation comes first and reads as None
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message is not None:
            break
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    assert message is not None
    event = decode(message["data"])
    assert event is not None and event.type is EventKind.ALERT
    assert event.alert is not None and event.alert.rule_id == "refund-anger"


async def test_block_keeps_the_agent_message_from_the_shopper(
        monitor: QualityMonitor, service: HandoffService, make_agent: AgentFactory) -> None:
    li = await make_agent("li", ["aftersale"])
    await seed_conversation(service, "web:wang")
    ticket = await open_ticket(service, "web:wang")
    await service.claim(ticket.id, li)
    with pytest.raises(MessageBlocked) as blocked:
        await service.reply(ticket.id, li, "加我微信 li_kefu，私下给您退")
    assert blocked.value.rule_id == "off-platform" and blocked.value.status_code == 422
    sent = await service.conversations.sent_to_shopper("web:wang")
    assert not any("微信" in t.text for t in sent)
    assert (await service.get(ticket.id)).first_response_at is None  # no reply was made
    [alert] = await monitor.store.alerts()
    assert (alert.rule_id, alert.action, alert.agent) == ("off-platform", "block", "li")
    # the same agent blocked again is alerted again (no quiet time for blocks)
    with pytest.raises(MessageBlocked):
        await service.reply(ticket.id, li, "我保证给您退")
    assert len(await monitor.store.alerts()) == 2
    # an alert-only phrase goes through and is reported
    await service.reply(ticket.id, li, "你自己看详情页")
    await monitor.drain()
    assert (await monitor.store.alerts())[0].rule_id == "dismissive"
    assert (await service.conversations.sent_to_shopper("web:wang"))[-1].text == "你自己看详情页"


async def test_time_limits(service: HandoffService, monitor: QualityMonitor,
                           make_agent: AgentFactory) -> None:
    clock = Clock()
    monitor._clock = clock  # the monitor's own clock, as a sweeper minutes later would see it
    await seed_conversation(service, "web:a")
    waiting = await open_ticket(service, "web:a")
    assert await monitor.check_time_limits() == []
    clock.advance(301)
    [late] = await monitor.check_time_limits()
    assert (late.rule_id, late.ticket_id) == ("queue-wait", waiting.id)
    assert await monitor.check_time_limits() == []  # once per ticket

    li = await make_agent("li", ["aftersale"])
    claimed = await service.claim(waiting.id, li)
    assert claimed.claimed_at is not None
    clock.now = claimed.claimed_at
    clock.advance(61)
    assert [a.rule_id for a in await monitor.check_time_limits()] == ["first-reply"]

    await service.reply(waiting.id, li, "您好")
    await service.add_shopper_message("web:a", "在吗")
    await monitor.drain()
    clock.now = (await service.conversations.tail("web:a", 1))[0].at
    clock.advance(100)
    assert await monitor.check_time_limits() == []
    clock.advance(100)
    [gap] = await monitor.check_time_limits()
    assert gap.rule_id == "reply-gap" and gap.matched.startswith("200s")
    await service.reply(waiting.id, li, "在的")
    await monitor.drain()
    assert await monitor.store.unanswered() == {}


async def test_queue_length_gauge(service: HandoffService, monitor: QualityMonitor) -> None:
    from kefu import metrics

    await seed_conversation(service, "web:b")
    await open_ticket(service, "web:b")
    await monitor.check_time_limits()
    assert metrics.QUEUE_LENGTH.labels("aftersale")._value.get() == 1
    await service.cancel("web:b")
    await monitor.check_time_limits()
    assert metrics.QUEUE_LENGTH.labels("aftersale")._value.get() == 0


async def test_a_closed_chat_stops_its_reply_clock(
        service: HandoffService, monitor: QualityMonitor, make_agent: AgentFactory) -> None:
    boss = await make_agent("boss", ["aftersale"], role=AgentRole.MANAGER)
    await seed_conversation(service, "web:c")
    ticket = await service.claim((await open_ticket(service, "web:c")).id, boss)
    await service.add_shopper_message("web:c", "hello?")
    await monitor.drain()
    assert list(await monitor.store.unanswered()) == ["web:c"]
    await service.resolve(ticket.id, boss)
    assert (await service.get(ticket.id)).status is TicketStatus.RETURNED
    await monitor.check_time_limits()
    assert await monitor.store.unanswered() == {}


async def test_alerts_since_any_time(monitor: QualityMonitor, service: HandoffService) -> None:
    from datetime import UTC, datetime

    await service.conversations.append("web:old", Role.SHOPPER, "差评")
    await monitor.drain()
    assert len(await monitor.store.alerts(since=datetime(1865, 1, 10, tzinfo=UTC))) == 1
    assert await monitor.store.alerts(since=datetime(2999, 1, 1, tzinfo=UTC)) == []
