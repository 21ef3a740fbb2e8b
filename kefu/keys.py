"""Every Redis key kefu uses, built in one place.

Scheme: ``kefu:{area}:{family}:{id}``. Areas:

- ``kb``      knowledge-base versions, the live pointer, publish events, embedding cache
- ``conv``    per-conversation record: transcript (doubles as outbox), bot-turn analyses, state
- ``handoff`` tickets, queues, leases, agents, sessions
- ``tracker``, ``lock``  Rasa's tracker and lock stores (``key_prefix: kefu``; Rasa builds the rest)
- ``gw``      gateway infrastructure (rate limits, delivery)
- ``orders``  after-sale work orders (工单)

Short-lived keys carry a TTL set by the code that writes them; the TTL is documented next to
the function that builds the key.
"""

from __future__ import annotations

KEY_PREFIX = "kefu"


def _key(area: str, family: str, ident: str | None = None) -> str:
    parts = [KEY_PREFIX, area, family]
    if ident is not None:
        parts.append(ident)
    return ":".join(parts)


# --- rasa -------------------------------------------------------------------------------------

RASA_KEY_PREFIX = KEY_PREFIX
"""``key_prefix`` in bot/rasa/endpoints.yml. Rasa 3.6 accepts only an alphanumeric prefix (it
silently falls back to its default otherwise) and appends ``:tracker:`` / ``:lock:`` itself."""

RASA_TRACKER_PREFIX = f"{RASA_KEY_PREFIX}:tracker:"
"""Before the sender (= conversation) id: a list of the current session's Rasa events, one JSON
event per item (bot/rasa/stores.py's KefuTrackerStore; TTL ``record_exp``)."""

RASA_LOCK_PREFIX = f"{RASA_KEY_PREFIX}:lock:"
"""Before the sender (= conversation) id: a sorted set of the tickets waiting for the conversation
(bot/rasa/stores.py's KefuLockStore; TTL the ticket lifetime, gone when no ticket is left)."""


# --- kb ---------------------------------------------------------------------------------------


def kb_version_key(version_id: str) -> str:
    """JSON snapshot of one immutable published knowledge-base version (no TTL)."""
    return _key("kb", "version", version_id)


def kb_versions_key() -> str:
    """Sorted set of version ids scored by publish time (no TTL)."""
    return _key("kb", "versions")


def kb_live_key() -> str:
    """String: id of the live version (no TTL)."""
    return _key("kb", "live")


def kb_events_channel() -> str:
    """Pub/sub channel announcing a new live version id to every running process."""
    return _key("kb", "events")


def kb_embedding_key(model: str, text_sha: str) -> str:
    """Cached embedding bytes for one text under one model (TTL 30 days)."""
    return _key("kb", "emb", f"{model}:{text_sha}")


def kb_audit_key() -> str:
    """List of JSON audit records (publish, rollback, override reasons); no TTL."""
    return _key("kb", "audit")


def kb_escalations_key() -> str:
    """Stream of questions that ended in handoff, low confidence or "not helpful" (capped)."""
    return _key("kb", "escalations")


def kb_escalations_resolved_key() -> str:
    """Sorted set of escalation ids a published draft answered, scored by publish time (no TTL)."""
    return _key("kb", "escalations-resolved")


def kb_welcome_key() -> str:
    """JSON of the web chat's greeting and quick questions per language (no TTL)."""
    return _key("kb", "welcome")


def kb_draft_key(draft_id: str) -> str:
    """JSON of an uploaded or drafted knowledge base awaiting review and publish (TTL 7 days)."""
    return _key("kb", "draft", draft_id)


# --- conv -------------------------------------------------------------------------------------



def conv_transcript_key(conversation_id: str) -> str:
    """Stream of every turn (shopper, bot, agent) with timestamps (TTL 7 days)."""
    return _key("conv", "transcript", conversation_id)


def conv_turns_key(conversation_id: str) -> str:
    """List of JSON bot-turn analyses: intent, confidence, candidates, decision (TTL 7 days)."""
    return _key("conv", "turns", conversation_id)


def conv_outbound_key() -> str:
    """Stream of (conversation, turn id) for every agent/system message pushed outside a request.

    Channels that deliver asynchronously (Telegram) read it with a consumer group per channel
    and acknowledge after delivery: at-least-once, de-duplicated by turn id. Capped by length.
    """
    return _key("conv", "outbound")


def conv_questions_key() -> str:
    """Stream of the questions shoppers asked the bot, with time and conversation.

    Trimmed at every write to the last 7 days (and a length cap): the knowledge admin asks the
    recent ones of a draft before it is published, to see which answers it would change.
    """
    return _key("conv", "questions")


def conv_state_key(conversation_id: str) -> str:
    """Hash of small counters and slots (failed turns in a row, order number…) (TTL 7 days)."""
    return _key("conv", "state", conversation_id)


def conv_profile_key(conversation_id: str) -> str:
    """Hash: channel, display name, language, chat id for delivery (TTL 30 days)."""
    return _key("conv", "profile", conversation_id)


# --- handoff ----------------------------------------------------------------------------------


def ticket_key(ticket_id: str) -> str:
    """JSON ticket with its context packet (no TTL while open; 30 days after resolve)."""
    return _key("handoff", "ticket", ticket_id)


def open_ticket_key(conversation_id: str) -> str:
    """String: the open ticket id of a conversation; its existence means a human owns the chat."""
    return _key("handoff", "open", conversation_id)


def queue_key(group: str) -> str:
    """Sorted set of waiting ticket ids of one skill group, scored by priority then arrival."""
    return _key("handoff", "queue", group)


def lease_key(ticket_id: str) -> str:
    """String: agent holding the claim on a ticket (TTL = lease time, refreshed by the console)."""
    return _key("handoff", "lease", ticket_id)


def agent_key(username: str) -> str:
    """Hash: agent record (password hash, groups, role, presence) (no TTL)."""
    return _key("handoff", "agent", username)


def session_key(token_sha: str) -> str:
    """String: ``{username}|{login epoch}`` of a console session token hash.

    Idle TTL renewed on use; refused past the absolute lifetime or after a revocation.
    """
    return _key("handoff", "session", token_sha)


def login_failures_key(scope: str, ident: str) -> str:
    """Counter of failed logins of one account or one client address (TTL = throttle window)."""
    return _key("handoff", "login-failures", f"{scope}:{ident}")


def sweeper_key() -> str:
    """String: when a lease sweeper last swept (TTL three sweep intervals: gone = no sweeper)."""
    return _key("handoff", "sweeper")


def handoff_events_channel() -> str:
    """Pub/sub channel of ticket events for live consoles and channel delivery."""
    return _key("handoff", "events")


def agents_key() -> str:
    """Set of every agent username (no TTL)."""
    return _key("handoff", "agents")


def online_key(group: str) -> str:
    """Sorted set of a group's online agents scored by last-seen epoch seconds (stale = gone)."""
    return _key("handoff", "online", group)


def claimed_key() -> str:
    """Sorted set of claimed ticket ids scored by claim time; the sweeper's work list (no TTL)."""
    return _key("handoff", "claimed")


def closed_key() -> str:
    """Sorted set of closed ticket ids scored by close time, capped to the newest few thousand."""
    return _key("handoff", "closed")


def last_ticket_key(conversation_id: str) -> str:
    """String: the last closed ticket id of a conversation, for its rating (TTL 30 days)."""
    return _key("handoff", "last", conversation_id)


def ticket_seq_key() -> str:
    """Counter giving each ticket its first-come order within a priority (no TTL)."""
    return _key("handoff", "seq")


def handling_times_key(group: str) -> str:
    """List of recent claim-to-resolve seconds of one group, newest first (capped, no TTL)."""
    return _key("handoff", "handling", group)


# --- gw ---------------------------------------------------------------------------------------


def gw_callback_key(token: str) -> str:
    """String: a button payload too long for Telegram callback_data, by token (TTL 30 days)."""
    return _key("gw", "callback", token)


def gw_delivered_key(channel: str, turn_id: str) -> str:
    """String: ``sending`` (TTL 2 min) or ``sent`` (TTL 2 days): a turn's delivery on a channel."""
    return _key("gw", "delivered", f"{channel}:{turn_id}")


def gw_owner_key(conversation_id: str) -> str:
    """String: SHA-256 of the conversation token its shopper holds (TTL 30 days, renewed on use).

    Set on the conversation's first message; every later call for it must show the token.
    """
    return _key("gw", "owner", conversation_id)


def gw_rate_key(scope: str, ident: str) -> str:
    """Hash: a token bucket (tokens left, when last filled) of one sender or one client address.

    Shared by every gateway; TTL the time the bucket takes to fill up again.
    """
    return _key("gw", "rate", f"{scope}:{ident}")


def gw_client_ids_key(conversation_id: str) -> str:
    """Hash: web client message id → transcript turn id, to drop resent messages (TTL 1 day)."""
    return _key("gw", "cids", conversation_id)


def gw_photo_key(photo_id: str) -> str:
    """Hash: a web chat shopper's photo: ``conversation``, ``type`` and ``data`` (the bytes).

    TTL the retention setting (``KEFU_WEB_PHOTO_RETENTION_DAYS``, 14 days).
    """
    return _key("gw", "photo", photo_id)


def gw_channel_photo_key(channel: str, file_id: str) -> str:
    """String: the conversation a channel's photo (``telegram`` file id) came from.

    Written when the photo arrives; the console fetches the file only for that conversation
    (a typed ``/send_photo{…}`` with another chat's file id gets nothing). TTL the retention
    setting, as the web chat's photos.
    """
    return _key("gw", "chphoto", f"{channel}:{file_id}")


def gw_photo_quota_key(conversation_id: str, day: str) -> str:
    """Hash: ``count`` and ``bytes`` of a web chat conversation's photos on one of the store's days.

    ``day`` is ``YYYYMMDD``; checked and counted with the upload in one Lua script.
    TTL the rest of that day and a minute (``KEFU_WEB_PHOTO_DAILY_LIMIT``/``_BYTES``).
    """
    return _key("gw", "photo_quota", f"{conversation_id}:{day}")


# --- orders -----------------------------------------------------------------------------------


def work_order_key(work_order_id: str) -> str:
    """JSON of one after-sale work order (no TTL: the back office's record)."""
    return _key("orders", "workorder", work_order_id)


def work_orders_key() -> str:
    """Sorted set of every work order id, scored by creation time (no TTL)."""
    return _key("orders", "workorders")


def work_orders_of_key(conversation_id: str) -> str:
    """Sorted set of one conversation's work order ids, scored by creation time (no TTL)."""
    return _key("orders", "workorders-of", conversation_id)


def open_work_order_key(conversation_id: str, kind: str, order_id: str) -> str:
    """String: the open work order of a kind, order and conversation (deleted on close).

    A double click on "confirm" makes one work order. No TTL.
    """
    return _key("orders", "workorder-open", f"{conversation_id}:{kind}:{order_id}")


def work_order_seq_key() -> str:
    """Counter numbering work orders (no TTL)."""
    return _key("orders", "workorder-seq")


def order_watch_key(order_id: str) -> str:
    """Set of conversations that verified an order, told when it changes.

    TTL 30 days, renewed at every verification.
    """
    return _key("orders", "watch", order_id)


def watched_orders_key() -> str:
    """Set of order ids some conversation watches (members whose watch expired are dropped)."""
    return _key("orders", "watched")


def proactive_sent_key(order_id: str, event: str, conversation_id: str) -> str:
    """String: this event of this order was told to this conversation already (TTL 30 days)."""
    return _key("orders", "proactive-sent", f"{order_id}:{event}:{conversation_id}")


def proactive_optout_key() -> str:
    """Set of conversations that said 退订: no proactive messages (no TTL)."""
    return _key("orders", "proactive-optout")


def proactive_count_key(conversation_id: str) -> str:
    """Counter of proactive messages sent to a conversation today (TTL 24 h from the first)."""
    return _key("orders", "proactive-count", conversation_id)


def proactive_templates_key() -> str:
    """Hash "{event}:{language}" → the managers' wording of a proactive message (no TTL)."""
    return _key("orders", "proactive-templates")


def order_event_key(event_id: str) -> str:
    """String: the store's webhook event with this id was handled (its outcome; TTL 7 days)."""
    return _key("orders", "event", event_id)


# --- qa (quality control: quality/) -----------------------------------------------------------


def qa_rules_version_key(version: int) -> str:
    """JSON of one saved, immutable version of the quality rules (no TTL)."""
    return _key("qa", "rules", str(version))


def qa_rules_live_key() -> str:
    """String: number of the live rules version, INCR'd on save (no TTL)."""
    return _key("qa", "rules-live")


def qa_audit_key() -> str:
    """Stream of rule changes: who saved which version, what changed (capped, no TTL)."""
    return _key("qa", "audit")


def qa_alerts_key() -> str:
    """Stream of quality alerts, newest last (capped at 100k entries, no TTL)."""
    return _key("qa", "alerts")


def qa_events_channel() -> str:
    """Pub/sub channel of alerts and whispers for live consoles."""
    return _key("qa", "events")


def qa_fired_key(rule_id: str, subject: str) -> str:
    """String: a rule has alerted for this conversation or ticket (TTL: its quiet time)."""
    return _key("qa", "fired", f"{rule_id}:{subject}")


def qa_unanswered_key() -> str:
    """Hash: conversation → epoch seconds of its oldest shopper message no agent answered yet.

    Only conversations a person owns; an entry goes on the agent's reply or the close.
    """
    return _key("qa", "unanswered")


def qa_whispers_key(ticket_id: str) -> str:
    """List of supervisor whispers on one ticket, JSON each (TTL 7 days)."""
    return _key("qa", "whispers", ticket_id)


def qa_record_key(ticket_id: str) -> str:
    """JSON: the QA record of one closed ticket (quality.reports.QaRecord; TTL 90 days)."""
    return _key("qa", "record", ticket_id)


def qa_ticket_alerts_key(ticket_id: str) -> str:
    """Set of the rule ids that alerted on one ticket, for its QA record (TTL 2 days)."""
    return _key("qa", "ticket-alerts", ticket_id)


def qa_report_key(day: str, name: str) -> str:
    """One per-day report counter of the shop's local ``day`` (YYYY-MM-DD), TTL 90 days.

    ``counts`` is a hash of counters; every other name is a sorted set (see quality/reports.py).
    """
    return _key("qa", "report", f"{day}:{name}")


def qa_rollup_key(day: str) -> str:
    """Hash: scope (``store``, ``g:…``, ``a:…``) → the day's report as JSON (TTL 400 days).

    Written once the day's raw counters are rolled up (quality.reports.Reports.roll_up).
    """
    return _key("qa", "rollup", day)


def qa_rollup_lock_key() -> str:
    """String: held by the gateway rolling old report days up (TTL 10 min)."""
    return _key("qa", "rollup-lock")


def qa_conv_alerts_key(conversation_id: str) -> str:
    """Set of the rule ids that alerted on a conversation, for its QA records (TTL 2 days)."""
    return _key("qa", "conv-alerts", conversation_id)
