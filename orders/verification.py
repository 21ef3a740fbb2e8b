"""Whose order is it: an order's details go only to the shopper it belongs to.

Two ways to be that shopper: the channel says who is logged in (the store account the store's
own app or site vouches for, ``store_account`` in the message metadata), or the shopper types
the last four digits of the phone number on the order. Until then the bot says only what is
safe (that the order exists) and offers a person. Pure Python: the actions keep which orders a
conversation has verified in a Rasa slot.
"""

from __future__ import annotations

import hmac
import re

from orders.models import Order

_TAIL = re.compile(r"(?<![0-9])([0-9]{4})(?![0-9])")


def phone_tail(text: str) -> str | None:
    """The digits in "8000", "尾号 8000", "ends in 8000"; ``None`` unless exactly one run of 4."""
    found = _TAIL.findall(text)
    return found[0] if len(found) == 1 else None


def owned_by_account(order: Order, store_account: str | None) -> bool:
    """The channel's logged-in store account placed the order."""
    return bool(store_account) and hmac.compare_digest(order.shopper_id.encode(),
                                                        str(store_account).encode())


def tail_matches(order: Order, tail: str) -> bool:
    """``tail`` is the last four digits of the order's phone."""
    return hmac.compare_digest(order.phone_last4.encode(), tail.encode())
