from __future__ import annotations

import pytest

from kefu.orders import find_order_number


@pytest.mark.parametrize(("text", "expected"), [
    ("我的订单 2026112012345 到哪了", "2026112012345"),  # 13 digits inside a sentence
    ("1234567890123456", "1234567890123456"),  # 16 digits
    ("订单号123456789012345678", "123456789012345678"),  # no space before it
    ("2026 1120 1234 5", "2026112012345"),  # grouped with spaces
    ("2026-11201-2345 这个", "2026112012345"),  # with dashes
    ("单号：1234—5678—9012", "123456789012"),  # a typographic dash
    ("E2026011512345678", "E2026011512345678"),
    ("e-2026 0115 1234 5678", "E2026011512345678"),
    ("订单号：E2026011512345678，帮我看看", "E2026011512345678"),
    ("order 112233445566778899.", "112233445566778899"),
    ("12345678901234567890", "12345678901234567890"),  # 20 digits
])
def test_order_numbers_as_shoppers_type_them(text: str, expected: str) -> None:
    assert find_order_number(text) == expected


@pytest.mark.parametrize("text", [
    "123456789",  # 9 digits
    "123456789012345678901",  # 21 digits
    "我的手机 13812345678",  # a mobile number
    "2026-11-20 12:30 下的单",  # a date and time
    "退货地址在哪", "",
])
def test_what_is_not_an_order_number(text: str) -> None:
    assert find_order_number(text) is None


def test_a_date_before_the_number_does_not_hide_it() -> None:
    assert find_order_number("2026-11-20 下单的 2026112012345") == "2026112012345"
