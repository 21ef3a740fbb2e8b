"""The supervisor's side: versioned, audited rules; whisper; take over; watch; who may do what."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from handoff.models import TicketStatus
from handoff.service import HandoffService
from kefu.accounts import AgentRole
from kefu.conversation import Role
from kefu.errors import NotAuthorized
from quality.errors import InvalidRules, MessageBlocked, StaleRules
from quality.monitor import QualityMonitor
from quality.rules import Rule, RuleAction
from quality.service import QualityService
from quality.store import QualityStore
from tests.handoff.conftest import AgentFactory, open_ticket, seed_conversation

pytestmark = pytest.mark.redis


async def test_rules_are_versioned_and_audited(quality: QualityService, service: HandoffService,
                                               make_agent: AgentFactory) -> None:
    boss = await make_agent("boss", ["aftersale"], role=AgentRole.MANAGER)
    defaults = await quality.rules()
    assert defaults.version == 0 and len(defaults.rules) == 12
    rules = [r.model_copy(update={"action": RuleAction.ALERT}) if r.id == "promise" else r
             for r in defaults.rules if r.id != "dismissive"]
    rules.append(Rule(id="no-sorry-spam", name="重复道歉", roles=[Role.AGENT],
                      patterns=["(抱歉.*){3,}"]))
    saved = await quality.save_rules(boss, rules, 0, "放宽承诺规则")
    assert saved.version == 1 and saved.saved_by == "boss"
    assert (await quality.rules()).version == 1
    assert (await quality.rules(0)).version == 0  # old versions stay readable
    [entry] = await quality.audit(boss)
    assert (entry.version, entry.by, entry.comment) == (1, "boss", "放宽承诺规则")
    assert (entry.added, entry.removed, entry.changed) == (["no-sorry-spam"], ["dismissive"],
                                                           ["promise"])
    with pytest.raises(StaleRules) as stale:  # someone else saved meanwhile
        await quality.save_rules(boss, rules, 0, "")
    assert stale.value.live_version == 1


async def test_a_saved_rule_applies_at_once(quality: QualityService, service: HandoffService,
                                            redis: aioredis.Redis,
                                            make_agent: AgentFactory) -> None:
    boss = await make_agent("boss", ["aftersale"], role=AgentRole.MANAGER)
    li = await make_agent("li", ["aftersale"])
    await seed_conversation(service, "web:wang")
    ticket = await service.claim((await open_ticket(service, "web:wang")).id, li)
    await service.reply(ticket.id, li, "亲，您稍等")
    rule = Rule(id="qin", name="不许叫亲", roles=[Role.AGENT], patterns=["亲"],
                action=RuleAction.BLOCK)
    await quality.save_rules(boss, [*(await quality.rules()).rules, rule], 0, "")
    with pytest.raises(MessageBlocked):
        await service.reply(ticket.id, li, "亲，您稍等")
    # another process picks the version up on its next refresh
    other = QualityMonitor(QualityStore(redis), service)
    assert (await other.refresh_rules()).version == 1


async def test_only_supervisors_manage(quality: QualityService, make_agent: AgentFactory) -> None:
    li = await make_agent("li", ["aftersale"])
    with pytest.raises(NotAuthorized):
        await quality.save_rules(li, [], 0, "")
    with pytest.raises(NotAuthorized):
        await quality.alerts(li)
    with pytest.raises(NotAuthorized):
        await quality.watch(li, "web:x", None)


async def test_invalid_rules_are_refused(quality: QualityService,
                                         make_agent: AgentFactory) -> None:
    boss = await make_agent("boss", ["aftersale"], role=AgentRole.MANAGER)
    rule = (await quality.rules()).rules[0]
    with pytest.raises(InvalidRules):
        await quality.save_rules(boss, [rule, rule], 0, "")


async def test_whisper_never_reaches_the_shopper(quality: QualityService,
                                                 service: HandoffService,
                                                 make_agent: AgentFactory) -> None:
    boss = await make_agent("boss", ["aftersale"], role=AgentRole.MANAGER)
    li = await make_agent("li", ["aftersale"])
    zhao = await make_agent("zhao", ["aftersale"])
    await seed_conversation(service, "web:wang")
    ticket = await service.claim((await open_ticket(service, "web:wang")).id, li)
    whisper = await quality.whisper(boss, ticket.id, "先道歉，再查物流")
    assert (whisper.to_agent, whisper.by) == ("li", "boss")
    transcript = await service.conversations.transcript("web:wang")
    assert not any("先道歉" in t.text for t in transcript)
    assert [w.text for w in await quality.whispers(li, ticket.id)] == ["先道歉，再查物流"]
    assert len(await quality.whispers(boss, ticket.id)) == 1
    with pytest.raises(NotAuthorized):
        await quality.whispers(zhao, ticket.id)
    with pytest.raises(NotAuthorized):
        await quality.whisper(li, ticket.id, "hi")


async def test_take_over_and_watch(quality: QualityService, service: HandoffService,
                                   make_agent: AgentFactory) -> None:
    boss = await make_agent("boss", ["aftersale"], role=AgentRole.MANAGER)
    li = await make_agent("li", ["aftersale"])
    await seed_conversation(service, "web:wang")
    ticket = await service.claim((await open_ticket(service, "web:wang")).id, li)
    taken = await quality.take_over(boss, ticket.id)
    assert (taken.status, taken.agent) == (TicketStatus.CLAIMED, "boss")
    assert taken.transfers[-1].from_agent == "li"
    await service.reply(ticket.id, boss, "我是主管，来帮您处理")
    turns = await quality.watch(boss, "web:wang", None)
    assert turns[-1].text == "我是主管，来帮您处理"
    assert await quality.watch(boss, "web:wang", turns[-1].id) == []
