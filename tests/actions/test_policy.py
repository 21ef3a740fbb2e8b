from __future__ import annotations

import pytest

from actions.policy import (
    Failure,
    HandoffPlan,
    Stuck,
    after_answer,
    fail,
    gives_up,
    group_for,
    plan_for_failure,
    plan_for_intent,
    same_topic,
)
from handoff.models import HandoffReason, Priority
from knowledge.models import Category

EXPECTED_GROUPS = {
    Category.PRESALE: "presale", Category.PRODUCT: "presale", Category.PAYMENT: "aftersale",
    Category.ACCOUNT: "presale", Category.AFTERSALE: "aftersale", Category.LOGISTICS: "logistics",
}


@pytest.mark.parametrize("category", list(Category))
def test_every_category_has_a_group(category: Category) -> None:
    assert group_for(category.value) == EXPECTED_GROUPS[category]


def test_unknown_category_leaves_the_group_to_the_handoff_service() -> None:
    assert group_for(None) is None and group_for("misc") is None


def test_complaint_is_high_priority_aftersale_whatever_came_before() -> None:
    plan = plan_for_intent("complain", "logistics")
    assert (plan.reason, plan.priority, plan.group) == \
        (HandoffReason.COMPLAINT, Priority.HIGH, "aftersale")


def test_request_human_follows_the_last_category() -> None:
    plan = plan_for_intent("request_human", "logistics")
    assert (plan.reason, plan.priority, plan.group) == \
        (HandoffReason.EXPLICIT_REQUEST, None, "logistics")


def test_failures() -> None:
    assert plan_for_failure("account").reason is HandoffReason.LOW_CONFIDENCE
    stuck = Stuck(frozenset({"a"}), (Failure.CLARIFIED, Failure.NOT_HELPFUL), "q")
    plan = plan_for_failure(None, stuck)
    assert (plan.reason, plan.detail) == (HandoffReason.REPEATED_FAILURE, "2 次未解决（澄清、没帮助）")


def test_failures_count_per_topic_not_per_message() -> None:
    first = fail(None, Failure.CLARIFIED, ["wash", "dry"], "鞋子怎么洗")
    assert (first.count, gives_up(first)) == (1, False)
    # the next question shares no candidate: a new topic, tried afresh
    other = fail(first, Failure.CLARIFIED, ["size", "fit"], "尺码怎么选")
    assert (other.entries, other.count, gives_up(other)) == (frozenset({"size", "fit"}), 1, False)
    # a rephrase of it does: the second failure on one topic gives up
    again = fail(other, Failure.CLARIFIED, ["fit", "width"], "偏大还是偏小")
    assert (again.count, gives_up(again), again.question) == (2, True, "偏大还是偏小")
    assert again.entries == frozenset({"size", "fit", "width"})


def test_an_answer_off_the_topic_clears_it_the_same_answer_keeps_it() -> None:
    stuck = fail(None, Failure.CLARIFIED, ["wash", "dry"], "q")
    assert after_answer(stuck, "size") is None
    assert after_answer(stuck, "wash") == stuck
    assert after_answer(None, "wash") is None
    assert same_topic(stuck, ["dry"]) and not same_topic(None, ["dry"])


def test_topic_and_plan_survive_the_slot_round_trip() -> None:
    stuck = fail(fail(None, Failure.CLARIFIED, ["a", "b"], "x"), Failure.NOT_HELPFUL, ["b"], "y")
    assert Stuck.from_slot(stuck.to_slot()) == stuck
    assert Stuck.from_slot(None) is None and Stuck.from_slot({"failures": ["??"]}) is None
    plan = plan_for_failure("logistics", stuck)
    assert HandoffPlan.from_slot(plan.to_slot()) == plan
    assert HandoffPlan.from_slot({"reason": "nope"}) is None
