"""Phone and ID numbers masked where personal data must not stay: logs, the escalation stream."""

from __future__ import annotations

import logging

import pytest

from kefu.logs import log_config
from kefu.privacy import MaskingFormatter, mask


@pytest.mark.parametrize(("text", "masked"), [
    ("我的手机号是13812345678", "我的手机号是138****5678"),
    ("电话 138 1234 5678 谢谢", "电话 138****5678 谢谢"),
    ("call +86 139-1234-5678", "call 139****5678"),
    ("身份证 11010519491231002X", "身份证 1****************X"),
    ("身份证号110105194912310021。", "身份证号1****************1。"),
    ("旧证 110105491231002", "旧证 1*************2"),
    ("两个 13812345678 和 15900001111", "两个 138****5678 和 159****1111"),
])
def test_phone_and_id_numbers_are_masked(text: str, masked: str) -> None:
    assert mask(text) == masked


@pytest.mark.parametrize("text", [
    "订单号 20261111123456789012",  # 20 digits: an order number, not a phone inside it
    "订单 E202611110001", "价格 1380 元", "12315投诉", "2026-11-11 下单", "no digits at all",
])
def test_order_numbers_and_plain_numbers_are_left_alone(text: str) -> None:
    assert mask(text) == text


def test_every_log_line_is_masked_arguments_and_tracebacks_included() -> None:
    formatter = MaskingFormatter("%(message)s")
    record = logging.LogRecord("kefu", logging.INFO, __file__, 1, "question %s", ("手机13812345678",),
                               None)
    assert formatter.format(record) == "question 手机138****5678"
    try:
        raise ValueError("bad input 11010519491231002X")
    except ValueError:
        import sys
        failing = logging.LogRecord("kefu", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert "11010519491231002X" not in formatter.format(failing)
    assert log_config()["formatters"]["masked"]["()"] == "kefu.privacy.MaskingFormatter"
