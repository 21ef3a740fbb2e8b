"""Kill a process of the stack under load from 16 shoppers: nobody is failed, nothing is lost.

The stack is ``make run``'s (supervisord, :mod:`kefu.stack`). While 16 simulated shoppers
(:mod:`tests.helpers.shoppers`) type demo questions and sometimes ask for a person, one process
is killed with SIGKILL (:func:`tests.helpers.faults.kill_under_load`). Then: no shopper got a
5xx or an empty reply, every message a shopper was told was kept is in its transcript, every
request for a person has a ticket, the stack restarted the process within 15 s, and every part
is ready again.

Shoppers resend as the widget does: after no answer at all (the gateway is dead: there is no
one to answer a 5xx), after ``retry_after`` (Redis away) and after a 429.
"""

from __future__ import annotations

import pytest

from kefu.stack import StackConfig
from tests.helpers.faults import kill_under_load

pytestmark = [pytest.mark.rasa, pytest.mark.model, pytest.mark.slow]

SHOPPERS = 16
BACK_WITHIN_SECONDS = 15.0  # the stack restarts the killed process within this


@pytest.mark.parametrize("process", ["redis", "rasa", "gateway", "sweeper"])
async def test_a_killed_process_fails_no_shopper_and_loses_nothing(stack: StackConfig,
                                                                   process: str) -> None:
    run = await kill_under_load(stack, process, shoppers=SHOPPERS,
                                back_within=BACK_WITHIN_SECONDS + 5)
    summary = run.summary()
    print(summary)
    tally = run.tally
    assert tally.sent > 50, summary
    assert tally.server_errors == 0, summary
    assert tally.empty == 0, summary
    assert tally.unanswered == 0, summary
    assert run.back_seconds <= BACK_WITHIN_SECONDS, summary
    assert run.kept.lost_messages == [], summary
    assert tally.asked_for_a_person, summary
    assert run.kept.missing_tickets == [], summary
