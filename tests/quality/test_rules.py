"""The default rules and the checker: what each rule catches and what it lets through."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kefu.conversation import Role
from quality.rules import Checker, Rule, RuleAction, RuleSet, TimeLimit, default_rule_set


@pytest.fixture(scope="module")
def checker() -> Checker:
    return Checker(default_rule_set())


def rules_hit(checker: Checker, role: Role, text: str) -> set[str]:
    return {h.rule.id for h in checker.check(role, text)}


@pytest.mark.parametrize(("text", "rule"), [
    ("我保证三天内给您退款", "promise"),
    ("放心，肯定赔您", "promise"),
    ("I guarantee you a full refund", "promise"),
    ("加我微信 kefu_2024 私下处理", "off-platform"),
    ("你打我电话 13812345678", "off-platform"),
    ("my QQ: 123456789", "off-platform"),
    ("你是不是傻逼", "insult"),
    ("你自己看详情页", "dismissive"),
    ("figure it out yourself", "dismissive"),
])
def test_agent_wording_is_caught(checker: Checker, text: str, rule: str) -> None:
    assert rule in rules_hit(checker, Role.AGENT, text)


@pytest.mark.parametrize("text", [
    "您好，退款将在 1-3 个工作日内原路退回。", "保证金会在活动结束后退还", "订单号 E20240611001 已发货",
    "Your refund is on its way.", "滚筒洗衣机的尺寸是 60cm",
])
def test_ordinary_agent_replies_pass(checker: Checker, text: str) -> None:
    assert rules_hit(checker, Role.AGENT, text) == set()


@pytest.mark.parametrize(("text", "rule"), [
    ("再不退款我就打12315投诉你们", "complaint-threat"),
    ("我要给差评，还要曝光你们", "complaint-threat"),
    ("I will leave a bad review", "complaint-threat"),
    ("你们还不退款？", "refund-anger"),
    ("where is my refund", "refund-anger"),
    ("怎么回事？？？", "punctuation"),
    ("WHY!!!", "punctuation"),
    ("什么垃圾东西", "swearing"),
    ("this is bullshit", "swearing"),
])
def test_shopper_anger_words_are_caught(checker: Checker, text: str, rule: str) -> None:
    assert rule in rules_hit(checker, Role.SHOPPER, text)


@pytest.mark.parametrize("text", ["请问什么时候发货？", "我想买一个垃圾袋", "谢谢!", "/request_human"])
def test_calm_shoppers_raise_nothing(checker: Checker, text: str) -> None:
    assert rules_hit(checker, Role.SHOPPER, text) == set()


def test_rules_read_only_their_roles(checker: Checker) -> None:
    assert rules_hit(checker, Role.SHOPPER, "我保证") == set()  # a shopper may say it
    assert rules_hit(checker, Role.AGENT, "我要投诉") == set()
    assert rules_hit(checker, Role.BOT, "加我微信") == set()


def test_blocking_and_anger_rules(checker: Checker) -> None:
    hits = checker.check(Role.AGENT, "加我微信，我保证退")
    assert {h.rule.id for h in checker.blocking(hits)} == {"off-platform", "promise"}
    assert checker.blocking(checker.check(Role.AGENT, "你自己看")) == []
    assert checker.wants_anger(Role.SHOPPER) and not checker.wants_anger(Role.AGENT)
    assert [h.rule.id for h in checker.check_anger(Role.SHOPPER, 0.9)] == ["angry-model"]
    assert checker.check_anger(Role.SHOPPER, 0.1) == []


def test_disabled_rules_are_not_checked() -> None:
    rules = default_rule_set().rules
    rules = [r.model_copy(update={"enabled": r.id != "promise"}) for r in rules]
    assert "promise" not in rules_hit(Checker(RuleSet(rules=rules)), Role.AGENT, "我保证")


def test_time_rules_are_kept_apart(checker: Checker) -> None:
    limits = {r.limit for r in checker.time_rules}
    assert limits == {TimeLimit.QUEUE_WAIT, TimeLimit.FIRST_REPLY, TimeLimit.REPLY_GAP}


@pytest.mark.parametrize("fields", [
    {"patterns": ["("]},  # not a regular expression
    {"patterns": ["(?i)x"]},  # a global flag cannot sit inside the checker's joined pattern
    {"patterns": [""]},  # would match every message
    {"patterns": ["x"], "roles": [Role.SHOPPER], "action": RuleAction.BLOCK},  # shoppers unblockable
    {"patterns": ["x"], "min_anger": 0.5},  # two kinds at once
    {"limit": TimeLimit.QUEUE_WAIT},  # a time rule without seconds
    {"patterns": ["x"], "roles": []},  # reads nobody
])
def test_invalid_rules_are_refused(fields: dict[str, object]) -> None:
    base: dict[str, object] = {"id": "r", "name": "r", "roles": [Role.AGENT]}
    if "limit" in fields:
        base["roles"] = []
    with pytest.raises(ValidationError):
        Rule.model_validate({**base, **fields})


def test_duplicate_ids_are_refused() -> None:
    rule = default_rule_set().rules[0]
    with pytest.raises(ValidationError):
        RuleSet(rules=[rule, rule])
