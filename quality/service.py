"""What supervisors do: manage the rules, read alerts, whisper to an agent, take a chat over.

Supervisors are the agents with the ``manager`` role (``kefu agent add --role manager``): they
already see every group's tickets and may reassign them; quality control adds these powers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date, datetime

from pydantic import ValidationError

from handoff.models import Ticket
from handoff.service import HandoffService
from kefu.accounts import Agent, AgentRole
from kefu.conversation import Turn, utcnow
from kefu.errors import NotAuthorized
from quality.errors import InvalidRules, NotFound
from quality.models import Alert, AuditEntry, DrillItem, Whisper
from quality.monitor import QualityMonitor
from quality.reports import QaRecord, Report, Reports
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

    # --- reports ------------------------------------------------------------------------------

    @property
    def _reports(self) -> Reports:
        if self.monitor.reports is None:
            raise NotFound("reports are not kept by this process")
        return self.monitor.reports

    def _scope_for(self, agent: Agent, scope: str) -> str:
        """Supervisors read any scope; an agent only their own (``a:{username}``)."""
        if is_supervisor(agent):
            return scope
        own = f"a:{agent.username}"
        if scope not in (own, "store"):
            raise NotAuthorized("another agent's figures", agent=agent.username, action="report")
        return own

    async def report(self, agent: Agent, day: date, scope: str) -> Report:
        """The day's figures for the store, a group (``g:…``) or an agent (``a:…``)."""
        return await self._reports.report(day, self._scope_for(agent, scope))

    async def records(self, agent: Agent, day: date, scope: str) -> list[QaRecord]:
        """The QA records of the day's closed tickets (an agent: their own)."""
        return await self._reports.records(day, scope=self._scope_for(agent, scope))

    async def drill(self, agent: Agent, day: date, figure: str) -> list[DrillItem]:
        """The conversations behind a figure, with the QA record when it is a ticket's."""
        require_supervisor(agent, "drill down")
        ids = await self._reports.drill(day, figure)
        if not figure.startswith(("closed", "csat:", "wait:", "frt:", "resolution:", "length:")):
            return [DrillItem(conversation_id=i) for i in ids]
        items = []
        for ticket_id in ids:
            record = await self._reports.record(ticket_id)
            if record is not None:
                items.append(DrillItem(conversation_id=record.conversation_id,
                                       ticket_id=ticket_id, record=record))
        return items

    async def review(self, agent: Agent, ticket_id: str, score: int, comment: str) -> QaRecord:
        """A supervisor's manual score and comment on a QA record."""
        require_supervisor(agent, "review")
        record = await self._reports.review(ticket_id, agent.username, score, comment)
        if record is None:
            raise NotFound(f"no QA record for ticket {ticket_id}")
        return record
