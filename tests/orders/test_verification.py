"""Whose order it is: the phone's last four digits, or the channel's store account."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orders import demo_data as demo
from orders.verification import owned_by_account, phone_tail, tail_matches

NOW = datetime(2026, 12, 7, tzinfo=UTC)
ORDERS = {o.order_id: o for o in demo.demo_orders(NOW)}


@pytest.mark.parametrize(("text", "tail"), [
    ("8000", "8000"), ("尾号8000", "8000"), ("手机后四位是 1234 ", "1234"),
    ("my phone ends in 5566", "5566"), ("１２３４", None), ("12345", None), ("123", None),
    ("1234 5678", None), ("订单 2026112012345", None), ("", None),
])
def test_phone_tail(text: str, tail: str | None) -> None:
    assert phone_tail(text) == tail


def test_tail_matches_the_order_only() -> None:
    mine, others = ORDERS[demo.SHIPPED], ORDERS[demo.OTHERS]
    assert tail_matches(mine, "8000") and not tail_matches(mine, "1234")
    assert tail_matches(others, "1234") and not tail_matches(others, "8000")


def test_the_logged_in_account_owns_its_orders_only() -> None:
    mine = ORDERS[demo.SHIPPED]
    assert owned_by_account(mine, demo.SHOPPER)
    assert not owned_by_account(mine, "other-shopper")
    assert not owned_by_account(mine, None) and not owned_by_account(mine, "")
