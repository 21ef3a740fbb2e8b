"""What supervisors do: manage the rules, read alerts, whisper to an agent, take a chat over.

Supervisors are the agents with the ``manager`` role (``kefu agent add --role manager``): they
already see every group's tickets and may reassign them; quality control adds these powers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from pydantic import ValidationError

from handoff.models import Ticket
from handoff.service import HandoffService
from kefu.accounts import Agent, AgentRole
from kefu.conversation import Turn, utcnow
from kefu.errors import NotAuthorized
from quality.errors import InvalidRules
from quality.models import Alert, AuditEntry, Whisper
from quality.monitor import QualityMonitor
from quality.rules import Rule, RuleSet
from quality.store import QualityStore

TAKEOVER_NOTE = "主管接管 Taken over by a supervisor"


def is_supervisor(agent: Agent) -> bool:
    """Whether ``agent`` may manage rules, see alerts, whisper and take over."""
    return agent.role is AgentRole.MANAGER


def require_supervisor(agent: Agent, action: str) -> None:
    """Refuse (403) an agent who is not a supervisor."""
    if not is_supervisor(agent):
        raise NotAuthorized("supervisors only", agent=agent.username, action=action)


class QualityService:
    """The supervisor's side, on the monitor, its store and the handoff service."""

    def __init__(self, monitor: QualityMonitor, handoff: HandoffService,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.monitor = monitor
        self.store: QualityStore = monitor.store
        self.handoff = handoff
        self._clock = clock

    async def rules(self, version: int | None = None) -> RuleSet:
        """The live rules, or a saved version."""
        return await self.store.rules(version)

    async def save_rules(self, agent: Agent, rules: list[Rule], base_version: int,
                         comment: str) -> RuleSet:
        """Save a new version on top of ``base_version`` and log who changed what."""
        require_supervisor(agent, "edit quality rules")
        now = self._clock()
        try:
            rule_set = RuleSet(rules=rules, saved_by=agent.username, saved_at=now,
                               comment=comment)
        except ValidationError as exc:
            raise InvalidRules(str(exc.errors()[0]["msg"])) from exc
        before = {r.id: r for r in (await self.store.rules(base_version)).rules}
        after = {r.id: r for r in rules}
        entry = AuditEntry(
            version=0, by=agent.username, at=now, comment=comment,
            added=sorted(after.keys() - before.keys()),
            removed=sorted(before.keys() - after.keys()),
            changed=sorted(i for i in after.keys() & before.keys() if after[i] != before[i]))
        saved = await self.store.save(rule_set, base_version, entry)
        await self.monitor.refresh_rules(force=True)
        return saved

    async def audit(self, agent: Agent) -> list[AuditEntry]:
        """Who changed the rules when, newest first."""
        require_supervisor(agent, "read the rules audit log")
        return await self.store.audit()

    async def alerts(self, agent: Agent, since: datetime | None = None) -> list[Alert]:
        """Recent alerts, newest first."""
        require_supervisor(agent, "read alerts")
        return await self.store.alerts(since=since)

    async def whisper(self, agent: Agent, ticket_id: str, text: str) -> Whisper:
        """A note to the ticket's agent that the shopper never sees."""
        require_supervisor(agent, "whisper")
        ticket = await self.handoff.get(ticket_id)
        return await self.store.add_whisper(Whisper(
            ticket_id=ticket.id, conversation_id=ticket.conversation_id, by=agent.username,
            by_name=agent.display_name, to_agent=ticket.agent, text=text.strip(),
            at=self._clock()))

    async def whispers(self, agent: Agent, ticket_id: str) -> list[Whisper]:
        """The whispers on a ticket, for its agent or a supervisor."""
        ticket = await self.handoff.get(ticket_id)
        if not is_supervisor(agent) and ticket.agent != agent.username:
            raise NotAuthorized("whispers of another agent's chat", agent=agent.username,
                                action="read whispers")
        return await self.store.whispers(ticket_id)

    async def take_over(self, agent: Agent, ticket_id: str) -> Ticket:
        """The supervisor owns the chat from now on (the agent's console sees it leave)."""
        require_supervisor(agent, "take over")
        return await self.handoff.transfer(ticket_id, agent, to_agent=agent.username,
                                           note=TAKEOVER_NOTE)

    async def watch(self, agent: Agent, conversation_id: str, after: str | None) -> list[Turn]:
        """The live transcript of any conversation (also one the bot still answers)."""
        require_supervisor(agent, "watch a conversation")
        return await self.handoff.conversations.transcript(conversation_id, after=after)

    async def anger(self, agent: Agent, texts: list[str]) -> list[float | None]:
        """The anger model's scores of ``texts`` (``None`` each when no model is loaded)."""
        require_supervisor(agent, "score texts")
        scorer = self.monitor.scorer
        if scorer is None:
            return [None for _ in texts]
        return [await asyncio.to_thread(scorer.score, t) for t in texts]
