"""CSV exports of the reports: one row per closed ticket's QA record, and the day's aggregates.

Excel opens UTF-8 CSV correctly only with a byte-order mark, so both start with one.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from quality.reports import QaRecord, Report

RECORD_COLUMNS = ["ticket_id", "conversation_id", "channel", "group", "agent", "reason", "status",
                  "opened_at", "claimed_at", "first_response_at", "closed_at", "wait_seconds",
                  "first_response_seconds", "resolution_seconds", "messages", "rating",
                  "rules_hit", "over_limits", "bot_wrong_before", "review_score",
                  "review_comment"]


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "|".join(str(v) for v in value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def _csv(rows: Iterable[list[str]]) -> str:
    out = io.StringIO()
    out.write("\ufeff")
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


def records_csv(records: list[QaRecord]) -> str:
    """One row per QA record, columns :data:`RECORD_COLUMNS`."""
    rows = [RECORD_COLUMNS]
    for record in records:
        data = record.model_dump()
        rows.append([_cell(data[c]) for c in RECORD_COLUMNS])
    return _csv(rows)


def aggregate_rows(report: Report) -> list[list[str]]:
    """(figure, key, value) rows of a report, as the dashboard shows them."""
    rows = [["figure", "key", "value"]]
    for name in ("conversations", "handed_off", "containment", "answered", "wrong", "wrong_share",
                 "closed", "csat_response_rate"):
        rows.append([name, "", _cell(getattr(report, name))])
    for reason, count in sorted(report.handoffs_by_reason.items()):
        rows.append(["handoffs_by_reason", reason, str(count)])
    for name in ("wait", "first_response", "resolution", "length"):
        p = getattr(report, name)
        rows += [[name, "n", str(p.n)], [name, "p50", _cell(p.p50)], [name, "p95", _cell(p.p95)]]
    for group, p in report.length_by_group.items():
        rows += [["length_by_group", f"{group}:p50", _cell(p.p50)],
                 ["length_by_group", f"{group}:n", str(p.n)]]
    rows += [["csat", score, str(count)] for score, count in report.csat.items()]
    rows += [["alerts_by_rule", rule, str(n)] for rule, n in sorted(report.alerts_by_rule.items())]
    rows += [["hourly_conversations", f"{h:02d}", str(n)]
             for h, n in enumerate(report.hourly_conversations)]
    rows += [["hourly_handoffs", f"{h:02d}", str(n)] for h, n in enumerate(report.hourly_handoffs)]
    rows += [["top_answered", t.entry_id, str(t.count)] for t in report.top_answered]
    rows += [["top_unanswered", t.entry_id, str(t.count)] for t in report.top_unanswered]
    rows += [["store_wide", name, "1"] for name in report.store_wide]
    return rows


def aggregates_csv(report: Report) -> str:
    """The report's figures, one (figure, key, value) per row."""
    return _csv(aggregate_rows(report))
