"""Quality rules: what a supervisor wants to hear about, and the cheap check of every message.

A rule reads the messages of some roles (agent wording, shopper anger) with regular expressions,
or the shopper anger model's score, or watches a time limit (queue wait, first reply, reply gap).
Its action is ``alert`` (supervisors are told) or ``block`` (an agent's message is stopped before
the shopper sees it, the agent is told why, supervisors are alerted). :data:`DEFAULT_RULES` is
the set a new store starts with; supervisors edit it through the API (``quality.api``), every
save a new version (``quality.store``).

:class:`Checker` compiles a rule set once; checking one message is a few regex searches (a few
microseconds, see README "Quality control"), so every message can be checked in the gateway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kefu.conversation import Role


class RuleAction(StrEnum):
    """What happens when a rule matches."""

    ALERT = "alert"  # online supervisors get an alert; the message goes through
    BLOCK = "block"  # an agent's message is stopped and the agent told why; supervisors alerted


class TimeLimit(StrEnum):
    """The clocks a time rule watches."""

    QUEUE_WAIT = "queue_wait"  # a ticket waiting for an agent, since it was opened
    FIRST_REPLY = "first_reply"  # a claimed ticket whose agent has not written yet
    REPLY_GAP = "reply_gap"  # a shopper message no agent has answered yet


class Rule(BaseModel):
    """One quality rule (a pattern rule, an anger-score rule or a time rule)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    name: str = Field(min_length=1, max_length=100)
    roles: list[Role] = Field(default_factory=list)  # whose messages it reads (none: time rule)
    patterns: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(
        default_factory=list, max_length=100)
    min_anger: float | None = Field(default=None, ge=0.0, le=1.0)  # shopper anger model score
    limit: TimeLimit | None = None
    seconds: int | None = Field(default=None, ge=1, le=7 * 24 * 3600)
    action: RuleAction = RuleAction.ALERT
    enabled: bool = True
    quiet_seconds: int = Field(default=300, ge=0, le=24 * 3600)  # one alert per chat per while

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        kinds = [bool(self.patterns), self.min_anger is not None, self.limit is not None]
        if sum(kinds) != 1:
            raise ValueError("a rule has exactly one of patterns, min_anger or limit")
        if self.limit is not None and (self.seconds is None or self.roles):
            raise ValueError("a time rule needs seconds and reads no messages (no roles)")
        if self.limit is None and not self.roles:
            raise ValueError("a pattern or anger rule needs the roles whose messages it reads")
        if self.action is RuleAction.BLOCK and (set(self.roles) - {Role.AGENT} or not self.roles):
            raise ValueError("only agent messages can be blocked")
        for pattern in self.patterns:
            try:  # as the Checker joins them: "(?i)" in the middle of a pattern is refused there
                re.compile(f"(?:{pattern})|(?:x)", re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"pattern {pattern!r} is not a regular expression: {exc}") from exc
        return self


class RuleSet(BaseModel):
    """One saved version of the rules."""

    version: int = 0  # 0: the built-in defaults, never saved
    rules: list[Rule]
    saved_by: str = "kefu"
    saved_at: datetime | None = None
    comment: str = ""

    @model_validator(mode="after")
    def _unique_ids(self) -> RuleSet:
        ids = [r.id for r in self.rules]
        if len(ids) != len(set(ids)):
            raise ValueError("rule ids must be unique")
        return self


@dataclass(frozen=True)
class Hit:
    """A rule that matched a message, and what in it matched."""

    rule: Rule
    matched: str  # the matching text, or the anger score as text


_A, _S = [Role.AGENT], [Role.SHOPPER]
DEFAULT_RULES: list[Rule] = [
    Rule(id="promise", name="承诺赔付 Promising compensation", roles=_A, action=RuleAction.BLOCK,
         patterns=[r"保证(?!金)", r"肯定(会|能|给您?)?(赔|退|补偿)", r"一定(会|能)?(赔|退)",
                   r"包赔",
                   r"\bguarantee[ds]?\b", r"\bdefinitely (refund|compensate)"]),
    Rule(id="off-platform", name="站外联系方式 Off-platform contact", roles=_A,
         action=RuleAction.BLOCK,
         patterns=[r"微信|weixin|wechat|\bv[x信]\b|\bwx\b", r"(?<!\d)1[3-9]\d{9}(?!\d)",
                   r"\bqq\s*[:：号]?\s*\d{5,}", r"加我|私聊我|add me on"]),
    Rule(id="insult", name="辱骂顾客 Insulting the shopper", roles=_A, action=RuleAction.BLOCK,
         patterns=[r"傻[逼bB瓜]|白痴|弱智|有病吧|滚开|滚蛋|给我滚",
                   r"\b(idiot|stupid|shut up|moron)\b"]),
    Rule(id="dismissive", name="推诿敷衍 Dismissive wording", roles=_A,
         patterns=[r"你自己看|自己去看|不归我管|关我什么事|我也没办法|爱买不买",
                   r"\b(not my problem|figure it out yourself|read it yourself)\b"]),
    Rule(id="complaint-threat", name="投诉威胁 Complaint threat", roles=_S,
         patterns=[r"投诉|差评|12315|曝光|消协|工商局?|举报|找媒体|报警|律师|起诉",
                   r"\b(complain(t)?|bad review|report you|lawyer|sue you|scam(mer)?s?)\b"]),
    Rule(id="refund-anger", name="催退款 Refund anger", roles=_S,
         patterns=[r"还不(给我)?退(款|钱)?|到底(什么时候)?(退|发)", r"骗子|骗钱|坑人",
                   r"\b(where is my (refund|money)|still no refund)\b"]),
    Rule(id="punctuation", name="连续问号叹号 Repeated ?/!", roles=_S,
         patterns=[r"[?？]{3,}|[!！]{3,}|[?？!！]{4,}"]),
    Rule(id="swearing", name="顾客骂人 Shopper swearing", roles=_S,
         patterns=[r"他妈|tmd|妈的|卧槽|我操|垃圾(?!袋|桶|分类)|\bsb\b|傻[逼bB]",
                   r"\b(fuck\w*|shit\w*|damn|wtf|bullshit|crap)\b"]),
    Rule(id="angry-model", name="情绪模型：愤怒 Anger model", roles=_S, min_anger=0.45),
    Rule(id="queue-wait", name="排队过久 Waiting too long", limit=TimeLimit.QUEUE_WAIT,
         seconds=300, quiet_seconds=3600),
    Rule(id="first-reply", name="首次响应超时 Slow first reply", limit=TimeLimit.FIRST_REPLY,
         seconds=60, quiet_seconds=3600),
    Rule(id="reply-gap", name="回复间隔过长 Reply gap", limit=TimeLimit.REPLY_GAP, seconds=180),
]


def default_rule_set() -> RuleSet:
    """The rules a store starts with (version 0)."""
    return RuleSet(version=0, rules=[r.model_copy() for r in DEFAULT_RULES])


class Checker:
    """A rule set compiled for checking messages; build once per version."""

    def __init__(self, rule_set: RuleSet) -> None:
        self.rule_set = rule_set
        live = [r for r in rule_set.rules if r.enabled]
        self._patterns: dict[Role, list[tuple[Rule, re.Pattern[str]]]] = {}
        self._anger: dict[Role, list[Rule]] = {}
        for rule in live:
            for role in rule.roles:
                if rule.patterns:
                    joined = "|".join(f"(?:{p})" for p in rule.patterns)
                    compiled = re.compile(joined, re.IGNORECASE)
                    self._patterns.setdefault(role, []).append((rule, compiled))
                elif rule.min_anger is not None:
                    self._anger.setdefault(role, []).append(rule)
        self.time_rules = [r for r in live if r.limit is not None]

    @property
    def version(self) -> int:
        """The rule set's version."""
        return self.rule_set.version

    def check(self, role: Role, text: str) -> list[Hit]:
        """The pattern rules a message of ``role`` matches (button payloads are never checked)."""
        if text.startswith("/"):
            return []
        hits = []
        for rule, pattern in self._patterns.get(role, ()):
            found = pattern.search(text)
            if found is not None:
                hits.append(Hit(rule, found.group(0)))
        return hits

    def wants_anger(self, role: Role) -> bool:
        """Whether any live rule reads the anger score of ``role``'s messages."""
        return bool(self._anger.get(role))

    def check_anger(self, role: Role, score: float) -> list[Hit]:
        """The anger rules a message of ``role`` with anger ``score`` reaches."""
        return [Hit(r, f"{score:.2f}") for r in self._anger.get(role, ())
                if r.min_anger is not None and score >= r.min_anger]

    def blocking(self, hits: list[Hit]) -> list[Hit]:
        """The hits whose rule blocks the message."""
        return [h for h in hits if h.rule.action is RuleAction.BLOCK]
