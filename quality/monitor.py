"""Live quality control: every message checked as it is kept, time limits watched, alerts raised.

How a message gets here: :class:`kefu.conversation.ConversationStore` calls :meth:`observe` after
every append in this process (shopper, bot, agent and system turns, whichever channel), and the
handoff service calls :meth:`screen` before it keeps an agent's message. ``observe`` runs the
compiled pattern rules synchronously (microseconds) and leaves everything that waits — the anger
model in a worker thread, the Redis writes of an alert — to a task, so the reply to the shopper
never waits for quality control. ``screen`` is the one place that may stop a message: a "block"
rule raises :class:`~quality.errors.MessageBlocked` and alerts supervisors.

:meth:`run` is the clock: every few seconds it reads the open tickets (queue length for
``/metrics``), and raises the time-limit alerts: queue wait, first reply, reply gap (from the
``qa_unanswered_key`` hash the message observer keeps). Several gateways may run it at once: an
alert fires once per rule and subject (``SET NX`` with the rule's quiet time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from handoff.models import EventType, HandoffEvent, Ticket, TicketStatus
from kefu import metrics
from kefu.accounts import Agent
from kefu.conversation import BotAnalysis, Role, Turn, utcnow
from quality.anger import AngerScorer
from quality.errors import MessageBlocked
from quality.models import Alert
from quality.reports import HELPFUL, Reports, seconds_between
from quality.rules import Checker, Hit, Rule, RuleAction, RuleSet, TimeLimit
from quality.store import QualityStore

logger = logging.getLogger(__name__)

EXCERPT_CHARS = 200
RULES_REFRESH_SECONDS = 2.0


class TicketSource(Protocol):
    """What the monitor reads of the handoff service."""

    async def open_ticket(self, conversation_id: str) -> Ticket | None:
        """The conversation's open ticket, if any."""

    async def get(self, ticket_id: str) -> Ticket:
        """One ticket."""

    async def list_tickets(self, status: TicketStatus | None = None, *,
                           agent: Agent | None = None, group: str | None = None,
                           limit: int = 200) -> list[Ticket]:
        """Open tickets (``status`` None), queue order first."""


class QualityMonitor:
    """Checks messages against the live rules and raises alerts."""

    def __init__(self, store: QualityStore, tickets: TicketSource, *,
                 scorer: AngerScorer | None = None, reports: Reports | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.scorer = scorer
        self.reports = reports
        self._tickets = tickets
        self._clock = clock
        self._checker = Checker(RuleSet(rules=[]))
        self._loaded_at = -1.0
        self._tasks: set[asyncio.Task[None]] = set()

    # --- rules --------------------------------------------------------------------------------

    @property
    def checker(self) -> Checker:
        """The compiled live rules (refreshed by :meth:`refresh_rules`)."""
        return self._checker

    async def refresh_rules(self, *, force: bool = False) -> Checker:
        """Recompile when another process saved a new version (checked every 2 s at most)."""
        if not force and time.monotonic() - self._loaded_at < RULES_REFRESH_SECONDS:
            return self._checker
        self._loaded_at = time.monotonic()
        version = await self.store.live_version()
        if force or version != self._checker.version or not self._checker.rule_set.rules:
            self._checker = Checker(await self.store.rules(version))
        return self._checker

    # --- messages -----------------------------------------------------------------------------

    def observe(self, conversation_id: str, turn: Turn) -> None:
        """Check a message just kept (a :class:`ConversationStore` observer; never raises)."""
        try:
            start = time.perf_counter()
            hits = self._checker.check(turn.role, turn.text)
            angry = (turn.role is Role.SHOPPER and self.scorer is not None
                     and self._checker.wants_anger(turn.role) and not turn.text.startswith("/"))
            metrics.QA_CHECK.observe(time.perf_counter() - start)
            clock = turn.role in (Role.SHOPPER, Role.AGENT) and "ticket_id" in turn.meta
            counted = self.reports is not None and (turn.role is Role.SHOPPER or any(
                b.payload == HELPFUL for b in turn.buttons))
            if hits or angry or clock or counted:
                self._spawn(self._follow_up(conversation_id, turn, hits, angry, clock))
        except Exception:  # quality control must never break the message path
            metrics.ERRORS.labels("quality").inc()
            logger.exception("checking a message of %s failed", conversation_id)

    async def screen(self, ticket: Ticket, agent: Agent, text: str) -> None:
        """Stop an agent's message that a "block" rule matches (raises MessageBlocked)."""
        checker = await self.refresh_rules()
        blocking = checker.blocking(checker.check(Role.AGENT, text))
        if not blocking:
            return
        hit = blocking[0]
        await self._alert(hit, ticket.conversation_id, Role.AGENT, text, ticket=ticket,
                          agent=agent.username, quiet=False)
        raise MessageBlocked(
            f"未发送：{hit.rule.name}（“{hit.matched}”）。Not sent: {hit.rule.name} "
            f"(\"{hit.matched}\").", rule_id=hit.rule.id, rule_name=hit.rule.name,
            matched=hit.matched)

    async def _follow_up(self, conversation_id: str, turn: Turn, hits: list[Hit], angry: bool,
                         clock: bool) -> None:
        if self.reports is not None:
            await self.reports.message(conversation_id, turn)
        if clock:
            if turn.role is Role.SHOPPER:
                await self.store.shopper_waiting(conversation_id, turn.at)
            else:
                await self.store.answered(conversation_id)
        anger = None
        if angry and self.scorer is not None:
            anger = await asyncio.to_thread(self.scorer.score, turn.text)
            hits = hits + self._checker.check_anger(turn.role, anger)
        if not hits:
            return
        ticket = await self._tickets.open_ticket(conversation_id)
        for hit in hits:
            await self._alert(hit, conversation_id, turn.role, turn.text, ticket=ticket,
                              agent=turn.meta.get("agent"), anger=anger)

    async def _alert(self, hit: Hit, conversation_id: str, role: Role | None, text: str, *,
                     ticket: Ticket | None, agent: str | None = None, anger: float | None = None,
                     quiet: bool = True, subject: str | None = None) -> Alert | None:
        rule = hit.rule
        if quiet and not await self.store.first_time(rule.id, subject or conversation_id,
                                                     rule.quiet_seconds):
            return None
        action = rule.action if role is Role.AGENT else RuleAction.ALERT
        metrics.QA_ALERTS.labels(rule.id, action.value).inc()
        if self.reports is not None:
            await self.reports.alerted(rule.id, conversation_id, ticket.id if ticket else None,
                                       self._clock())
        return await self.store.add_alert(Alert(
            rule_id=rule.id, rule_name=rule.name, action=action, conversation_id=conversation_id,
            ticket_id=ticket.id if ticket else None, group=ticket.group if ticket else None,
            agent=agent or (ticket.agent if ticket else None), role=role,
            text=text[:EXCERPT_CHARS], matched=hit.matched, anger=anger, at=self._clock()))

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            metrics.ERRORS.labels("quality").inc()
            logger.error("quality follow-up failed: %r", task.exception())

    def on_analysis(self, conversation_id: str, analysis: BotAnalysis) -> None:
        """Count a knowledge decision in the reports (a ``ConversationStore`` observer)."""
        if self.reports is not None and analysis.decision in ("answer", "handoff"):
            self._spawn(self.reports.analysis(analysis))

    def on_event(self, event: HandoffEvent) -> None:
        """Count a handoff event in the reports (an ``EventBus`` observer; never raises)."""
        wanted = (EventType.TICKET_WAITING, EventType.TICKET_CLOSED, EventType.TICKET_RATED)
        if self.reports is not None and event.type in wanted:
            self._spawn(self._count(event))

    async def _count(self, event: HandoffEvent) -> None:
        assert self.reports is not None
        ticket = await self._tickets.get(event.ticket_id)
        if event.type is EventType.TICKET_WAITING:
            await self.reports.ticket_opened(ticket)
        elif event.type is EventType.TICKET_CLOSED:
            await self.reports.ticket_closed(ticket, self.over_limits(ticket))
        else:
            await self.reports.rated(ticket)

    def over_limits(self, ticket: Ticket) -> list[str]:
        """The queue-wait and first-reply rules a (closed) ticket broke."""
        broke = []
        end = ticket.closed_at or self._clock()
        for rule in self._checker.time_rules:
            assert rule.seconds is not None
            if rule.limit is TimeLimit.QUEUE_WAIT:
                span = seconds_between(ticket.created_at, ticket.claimed_at or end)
            elif rule.limit is TimeLimit.FIRST_REPLY and ticket.claimed_at is not None:
                span = seconds_between(ticket.claimed_at, ticket.first_response_at or end)
            else:
                continue
            if span is not None and span > rule.seconds:
                broke.append(rule.id)
        return broke

    async def drain(self) -> None:
        """Wait for the follow-ups under way (tests, shutdown)."""
        while self._tasks:
            pending = [t for t in self._tasks if not t.done()]
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            else:  # done, but their callbacks (which drop them from the set) have not run yet
                await asyncio.sleep(0)

    # --- clocks -------------------------------------------------------------------------------

    async def check_time_limits(self) -> list[Alert]:
        """One pass of the clock: queue-length gauges and the time-limit alerts."""
        checker = await self.refresh_rules()
        tickets = await self._tickets.list_tickets(None, limit=10_000)
        now = self._clock()
        waiting: dict[str, int] = {}
        for t in tickets:
            if t.status is TicketStatus.WAITING:
                waiting[t.group] = waiting.get(t.group, 0) + 1
        for group, count in waiting.items():
            metrics.QUEUE_LENGTH.labels(group).set(count)
        for group in {g for (g,) in _label_values(metrics.QUEUE_LENGTH)} - set(waiting):
            metrics.QUEUE_LENGTH.labels(group).set(0)
        raised: list[Alert] = []
        for rule in checker.time_rules:
            raised += await self._time_rule(rule, tickets, now)
        return raised

    async def _time_rule(self, rule: Rule, tickets: list[Ticket], now: datetime) -> list[Alert]:
        assert rule.seconds is not None
        late: list[tuple[Ticket, float, str]] = []
        if rule.limit is TimeLimit.QUEUE_WAIT:
            late = [(t, (now - t.created_at).total_seconds(), t.id) for t in tickets
                    if t.status is TicketStatus.WAITING]
        elif rule.limit is TimeLimit.FIRST_REPLY:
            late = [(t, (now - t.claimed_at).total_seconds(), t.id) for t in tickets
                    if t.status is TicketStatus.CLAIMED and t.claimed_at is not None
                    and t.first_response_at is None]
        elif rule.limit is TimeLimit.REPLY_GAP:
            late = await self._reply_gaps(tickets, now)
        raised = []
        for ticket, seconds, subject in late:
            if seconds < rule.seconds:
                continue
            hit = Hit(rule, f"{int(seconds)}s > {rule.seconds}s")
            alert = await self._alert(hit, ticket.conversation_id, None, "", ticket=ticket,
                                      subject=subject)
            if alert is not None:
                raised.append(alert)
        return raised

    async def _reply_gaps(self, tickets: list[Ticket],
                          now: datetime) -> list[tuple[Ticket, float, str]]:
        claimed = {t.conversation_id: t for t in tickets if t.status is TicketStatus.CLAIMED}
        gaps = []
        for conversation_id, since in (await self.store.unanswered()).items():
            ticket = claimed.get(conversation_id)
            if ticket is None:  # closed, or still waiting (the queue-wait rule's business)
                await self.store.answered(conversation_id)
                continue
            gaps.append((ticket, now.timestamp() - since, f"{ticket.id}:{since}"))
        return gaps

    async def run(self, interval: float, stop: asyncio.Event) -> None:
        """Check the clocks every ``interval`` seconds until ``stop`` is set.

        An event, not only cancellation: a cancellation that lands inside a Redis call can be
        absorbed by the client's reconnect handling, and the loop would go on.
        """
        while not stop.is_set():
            try:
                await self.check_time_limits()
            except Exception:  # keep watching through Redis hiccups
                metrics.ERRORS.labels("quality").inc()
                logger.exception("quality clock failed; retrying in %.1fs", interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)


def _label_values(gauge: Any) -> list[tuple[str, ...]]:
    """The label tuples a labelled metric has seen (prometheus-client keeps them privately)."""
    return list(getattr(gauge, "_metrics", {}).keys())
