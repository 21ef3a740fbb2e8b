from __future__ import annotations

import pytest

from actions.policy import gives_up, group_for, plan_for_failure, plan_for_intent
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
    assert plan_for_failure("account", repeated=False).reason is HandoffReason.LOW_CONFIDENCE
    assert plan_for_failure(None, repeated=True).reason is HandoffReason.REPEATED_FAILURE
    assert [gives_up(n) for n in (0, 1, 2, 3)] == [False, False, True, True]
