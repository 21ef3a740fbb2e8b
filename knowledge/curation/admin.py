"""The knowledge manager's service: drafts, review, "try a question", test gate, publish, rollback.

The path of every change, whether a file was uploaded or a draft was made from an escalation topic:

1. **validate** the whole file (`knowledge.loader`); nothing of an invalid file is kept;
2. keep it as a **draft** in Redis (``kb_draft_key``, one week) so any gateway process can serve
   the review, and the manager can come back to it;
3. **review**: the diff against the live version, close question pairs
   (`knowledge.curation.review`), the campaign calendar and the test gate, what else the draft
   changes (`knowledge.curation.impact`: the live tests and recent shopper questions whose answers
   would change), and "try a question" at any time against the draft or live;
4. **publish** with the author: refused when the draft answers its test questions worse than the
   live version unless the manager gives a written reason, which goes into the audit log;
   every process swaps to the new version (`knowledge.runtime.KnowledgeRuntime`);
5. **roll back** to any earlier version in one call.

Indexes of drafts and older versions are built on demand with the runtime's encoders and embedding
cache, and a few are kept in memory, so trying many questions against one draft is fast.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import unicodedata
from collections import OrderedDict
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis
from pydantic import BaseModel, Field, ValidationError

from kefu.conversation import ConversationStore
from kefu.keys import kb_audit_key, kb_draft_key
from kefu.welcome import WelcomeStore
from knowledge.calibration import assess
from knowledge.curation.diff import KbDiff, diff_kbs
from knowledge.curation.impact import ImpactReport, impact, impact_times, questions_to_ask
from knowledge.curation.review import (
    CampaignWindow,
    ClosePair,
    GateReport,
    calendar,
    close_pairs,
    run_gate,
    union_tests,
)
from knowledge.curation.topics import (
    DEFAULT_TOPIC_SIMILARITY,
    EscalationLog,
    Topic,
    group_topics,
)
from knowledge.errors import DraftNotFound, GateRefused, Problem, TopicNotFound, ValidationFailed
from knowledge.loader import KbFormat, dump_yaml, load_kb_bytes, template_bytes
from knowledge.models import Category, Decision, Entry, KnowledgeBase
from knowledge.retrieval import Encoder
from knowledge.runtime import KnowledgeRuntime
from knowledge.service import KnowledgeIndex, KnowledgeService, shared_encoders
from knowledge.store import AuditRecord, VersionInfo, kb_sha

logger = logging.getLogger(__name__)

DRAFT_TTL_SECONDS = 7 * 24 * 3600
RECENT_QUESTIONS_DAYS = 7  # shopper questions a draft is asked before publishing
RECENT_QUESTIONS_MAX = 200
GATE_OVERRIDE_ACTION = "gate_override"
MAX_CLOSE_PAIRS = 200  # those the draft touches first
_INDEX_CACHE_SIZE = 4


class Draft(BaseModel):
    """A validated knowledge base waiting for review and publish."""

    id: str
    filename: str
    author: str
    created_at: datetime
    source: str  # "upload" (whole file), "merge" (file merged into live) or "topic"
    topic_id: str | None = None
    escalation_ids: list[str] = Field(default_factory=list)  # resolved when published
    kb: KnowledgeBase


class DraftInfo(BaseModel):
    """A draft without its entries."""

    id: str
    filename: str
    author: str
    created_at: datetime
    source: str
    topic_id: str | None
    entries: int
    tests: int


class ThresholdsView(BaseModel):
    """The answer policy of a version and what to expect of it, as shown to the manager."""

    answer: float  # confidence the best entry is right needed to answer
    clarify: float  # confidence the right entry is among three needed to offer options
    held_out_right: float | None  # share of held-out variants whose best entry is right
    thin: bool  # too few variants to answer many questions at once
    advice: str  # what to expect, and what adding variants would buy


class DraftReview(BaseModel):
    """Everything the manager checks before publishing a draft."""

    draft: DraftInfo
    diff: KbDiff
    close_pairs: list[ClosePair]
    gate: GateReport
    calendar: list[CampaignWindow]
    thresholds: ThresholdsView


class TryResult(BaseModel):
    """The decision of one version for one question at one time."""

    target: str  # "live", "draft", or "version"
    version: str | None  # the published version id (or the draft id)
    decision: Decision


class PublishResult(BaseModel):
    """A published draft."""

    version: VersionInfo
    gate: GateReport
    overridden: bool  # published although the gate refused it, with a written reason


class TopicView(BaseModel):
    """An escalation topic and what the live version does with its question now."""

    topic: Topic
    live: Decision | None


class VersionsView(BaseModel):
    """Every published version and which one is live."""

    live: str | None
    versions: list[VersionInfo]


class AdminService:
    """Operations of the knowledge admin (web page, ``kefu kb`` commands).

    Args:
        runtime: The process's knowledge runtime: its store, encoders, embedding cache and the live
            index. It need not be started (the CLI builds indexes without following changes), but
            then it must have been given its encoders.
        redis: The asyncio client (``decode_responses=True``) drafts and escalations live in.
        encoder: The encoder that groups escalations (the runtime's primary encoder by default).
        topic_similarity: Average cosine within one escalation topic.
    """

    def __init__(
        self,
        runtime: KnowledgeRuntime,
        redis: aioredis.Redis,
        *,
        encoder: Encoder | None = None,
        topic_similarity: float = DEFAULT_TOPIC_SIMILARITY,
    ) -> None:
        self.runtime = runtime
        self.store = runtime.store
        self._redis = redis
        self._encoder = encoder
        self._topic_similarity = topic_similarity
        self._conversations = ConversationStore(redis)
        self.escalations = EscalationLog(redis, self._conversations)
        self.welcome = WelcomeStore(redis)  # the web chat's greeting and quick questions
        self._indexes: OrderedDict[str, KnowledgeIndex] = OrderedDict()
        self._pairs: dict[tuple[str, frozenset[str]], list[ClosePair]] = {}
        self._build_lock = asyncio.Lock()

    def now(self) -> datetime:
        """The current time in the knowledge base's zone."""
        return self.runtime.service.now()

    # --- drafts -------------------------------------------------------------------------------

    async def upload(
        self, content: bytes, filename: str, *, author: str, merge: bool = False,
    ) -> DraftReview:
        """Validate an uploaded file, keep it as a draft and review it.

        Args:
            content: The file's bytes (YAML, CSV or XLSX, by ``filename``'s extension).
            filename: The uploaded file's name.
            author: Who uploads (the draft's author).
            merge: The file holds only some entries (a campaign file): they are added to the
                live version, replacing live entries with the same id, and its tests are added
                to the live tests. Otherwise the file is the whole knowledge base.

        Raises:
            ValidationFailed: the file has problems (all of them, row by row).
        """
        kb = load_kb_bytes(content, filename)
        if merge:
            live = await self.store.live()
            if live is not None:
                kb = load_kb_bytes(dump_yaml(merged(live[1], kb)).encode("utf-8"), filename)
        draft = await self.save_draft(kb, filename=filename, author=author,
                                      source="merge" if merge else "upload")
        return await self.review(draft.id)

    async def draft(self, draft_id: str) -> Draft:
        """A stored draft.

        Raises:
            DraftNotFound: no draft has that id (or it expired).
        """
        raw = await self._redis.get(kb_draft_key(draft_id))
        if raw is None:
            raise DraftNotFound(draft_id)
        return Draft.model_validate_json(raw)

    async def draft_yaml(self, draft_id: str) -> str:
        """The draft as a YAML file (to edit and upload again)."""
        return dump_yaml((await self.draft(draft_id)).kb)

    async def review(self, draft_id: str) -> DraftReview:
        """Diff against live, close pairs, test gate and calendar of a draft."""
        draft = await self.draft(draft_id)
        live = await self.store.live()
        diff = await self.diff_against_live(draft.kb, live=live)
        index = await self._index_for(draft.kb)
        touched = frozenset(c.entry_id for c in (*diff.added, *diff.changed))
        pairs = await self._close_pairs(index, touched)
        gate = await self._gate(draft.kb, index)
        found = assess(draft.kb, index.profile, index.model.meta.get("expected", {}))
        return DraftReview(
            draft=_info(draft), diff=diff, close_pairs=pairs, gate=gate,
            calendar=calendar(draft.kb, self.now()),
            thresholds=ThresholdsView(answer=index.policy.answer, clarify=index.policy.clarify,
                                      held_out_right=found.held_out_right, thin=found.thin,
                                      advice=found.advice),
        )

    async def impact(self, draft_id: str) -> ImpactReport:
        """What else publishing the draft changes: answers to questions it does not mention.

        The live version's tests and the shopper questions of the last
        :data:`RECENT_QUESTIONS_DAYS` days are asked of both versions, now and at the start and
        end of each campaign window the draft touches (`knowledge.curation.impact`).
        """
        draft = await self.draft(draft_id)
        live = await self.store.live()
        diff = await self.diff_against_live(draft.kb, live=live)
        now = self.now()
        since = now - timedelta(days=RECENT_QUESTIONS_DAYS)
        recent = await self._conversations.recent_questions(since, RECENT_QUESTIONS_MAX)
        questions = questions_to_ask(live[1].tests if live else (), diff.tests_added,
                                     [(q.text, q.at) for q in recent])
        draft_service = KnowledgeService(await self._index_for(draft.kb),
                                         settings=self.runtime.settings)
        touched = [c.entry_id for c in (*diff.added, *diff.changed)]
        times = impact_times(diff, calendar(draft.kb, now), now)
        rows = await asyncio.to_thread(impact, await self._live_service(), draft_service,
                                       questions, times, touched)
        return ImpactReport(times=times, since=since, rows=rows,
                            tests=sum(q.source == "test" for q in questions),
                            shopper_questions=sum(q.source == "shopper" for q in questions))

    # --- trying questions ---------------------------------------------------------------------

    async def try_question(
        self, text: str, *, at: datetime | None = None, draft_id: str | None = None,
        version_id: str | None = None,
    ) -> TryResult:
        """Ranked candidates and the decision for ``text`` as of ``at`` (default now).

        Against the draft ``draft_id``, the published version ``version_id``, or else the live one.
        """
        settings = self.runtime.settings
        label: str | None
        if draft_id is not None:
            index = await self._index_for((await self.draft(draft_id)).kb)
            service, target, label = KnowledgeService(index, settings=settings), "draft", draft_id
        elif version_id is not None:
            info, kb = await self.store.get(version_id)
            index = await self._index_for(kb, info=info)
            service, target = KnowledgeService(index, settings=settings), "version"
            label = version_id
        else:
            service = await self._live_service() or KnowledgeService(settings=settings)
            target, label = "live", service.version.id if service.version else None
        decision = await asyncio.to_thread(service.decide, text, at=at)
        return TryResult(target=target, version=label, decision=decision)

    # --- publishing ---------------------------------------------------------------------------

    async def publish(
        self, draft_id: str, *, author: str, note: str = "", override_reason: str | None = None,
    ) -> PublishResult:
        """Publish a draft after its test gate; see `publish_kb`."""
        draft = await self.draft(draft_id)
        result = await self.publish_kb(draft.kb, author=author, note=note,
                                       override_reason=override_reason)
        if draft.escalation_ids:
            await self.escalations.resolve(draft.escalation_ids)
        return result

    async def publish_kb(
        self, kb: KnowledgeBase, *, author: str, note: str = "", override_reason: str | None = None,
    ) -> PublishResult:
        """Run the test gate, then publish ``kb`` as a new immutable version made live.

        Without test questions in either version there is nothing to compare, and no index is
        built here (the command line then needs no model).

        Raises:
            GateRefused: the new version answers the test questions worse than the live one and
                no ``override_reason`` was given.
        """
        live = await self.store.live()
        gate = GateReport(live_version=live[0].id if live else None)
        if union_tests(live[1] if live else None, kb):
            gate = await self._gate(kb, await self._index_for(kb))
        reason = (override_reason or "").strip()
        if not gate.passed and not reason:
            raise GateRefused(gate, gate.summary)
        overridden = not gate.passed
        full_note = note.strip()
        if overridden:
            full_note = f"{full_note} [gate override: {reason}]".strip()
        info = await self.store.publish(kb, author=author, note=full_note)
        if overridden:
            record = AuditRecord(action=GATE_OVERRIDE_ACTION, at=datetime.now(UTC), author=author,
                                 version=info.id, previous=info.parent, note=reason,
                                 gate=gate.summary, draft_accuracy=gate.draft_accuracy,
                                 live_accuracy=gate.live_accuracy)
            await self._redis.rpush(kb_audit_key(), record.model_dump_json())
        return PublishResult(version=info, gate=gate, overridden=overridden)

    async def rollback(self, version_id: str, *, author: str, note: str = "") -> VersionInfo:
        """Make an earlier version live again (one step, audited, reaches every process).

        Raises:
            VersionNotFound: no version has that id.
        """
        return await self.store.rollback(version_id, author=author, note=note)

    async def versions(self) -> VersionsView:
        """Every published version, newest first, and the live id."""
        return VersionsView(live=await self.store.live_id(), versions=await self.store.versions())

    async def version_diff(self, version_id: str, against: str | None = None) -> KbDiff:
        """What ``version_id`` changed against ``against`` (default: the version before it)."""
        info, kb = await self.store.get(version_id)
        base_id = against if against is not None else info.parent
        base = (await self.store.get(base_id))[1] if base_id is not None else None
        return diff_kbs(base, kb, base_version=base_id)

    async def diff_against_live(
        self, kb: KnowledgeBase, *, live: tuple[VersionInfo, KnowledgeBase] | None = None,
    ) -> KbDiff:
        """What publishing ``kb`` would change (``live``: the live version, if already read)."""
        live = live or await self.store.live()
        return diff_kbs(live[1] if live else None, kb, base_version=live[0].id if live else None)

    async def calendar(
        self, *, draft_id: str | None = None, version_id: str | None = None,
    ) -> list[CampaignWindow]:
        """The campaign calendar of a draft, a version, or the live version."""
        if draft_id is not None:
            kb = (await self.draft(draft_id)).kb
        elif version_id is not None:
            kb = (await self.store.get(version_id))[1]
        else:
            live = await self.store.live()
            kb = live[1] if live else KnowledgeBase(entries=())
        return calendar(kb, self.now())

    async def audit(self, limit: int = 100) -> list[AuditRecord]:
        """The latest audit records (publish, rollback, gate overrides), newest first."""
        return await self.store.audit(limit)

    @staticmethod
    def template(fmt: KbFormat | str) -> bytes:
        """A starter knowledge-base file in ``fmt`` (yaml, csv or xlsx)."""
        return template_bytes(fmt)

    # --- learning from escalations ------------------------------------------------------------

    async def topics(self, *, min_conversations: int = 2, limit: int = 1000) -> list[TopicView]:
        """Open escalation topics, largest first, with what the live version answers to each."""
        escalations = await self.escalations.recent(limit)
        encoder = await self._topic_encoder()
        topics = await asyncio.to_thread(group_topics, escalations, encoder,
                                         similarity=self._topic_similarity,
                                         min_conversations=min_conversations)
        live = await self._live_service()
        views = []
        for topic in topics:
            decision = await asyncio.to_thread(live.decide, topic.question) if live else None
            views.append(TopicView(topic=topic, live=decision))
        return views

    async def topic(self, topic_id: str) -> Topic:
        """One open topic (also those seen in a single conversation).

        Raises:
            TopicNotFound: no open topic has that id.
        """
        for view in await self.topics(min_conversations=1):
            if view.topic.id == topic_id:
                return view.topic
        raise TopicNotFound(topic_id)

    async def draft_from_topic(
        self, topic_id: str, *, author: str, entry_id: str | None = None,
        new_id: str | None = None, question: str | None = None, answer: str | None = None,
        category: Category | str | None = None,
    ) -> DraftReview:
        """A draft of the live knowledge base that answers a topic's questions, then its review.

        With ``entry_id`` the topic's examples become variants of that existing entry; otherwise a
        new entry is drafted: the central example as question, the others as variants, and the
        answer given or else the agents' most relevant reply.

        Raises:
            TopicNotFound: no open topic has that id.
            ValidationFailed: the result would not validate (e.g. no answer, unknown entry).
        """
        topic = await self.topic(topic_id)
        live = await self.store.live()
        base = live[1] if live else KnowledgeBase(entries=())
        if entry_id is not None:
            kb = _with_variants(base, entry_id, topic)
        else:
            entry = _new_entry(base, topic, new_id=new_id, question=question, answer=answer,
                               category=category, guess=await self._category_guess(topic))
            kb = base.model_copy(update={"entries": (*base.entries, entry)})
        filename = f"topic-{topic.id}.yaml"
        kb = load_kb_bytes(dump_yaml(kb).encode("utf-8"), filename)  # the same rules as uploads
        draft = await self.save_draft(kb, filename=filename, author=author, source="topic",
                                      topic_id=topic.id, escalation_ids=topic.escalation_ids)
        return await self.review(draft.id)

    async def save_draft(
        self, kb: KnowledgeBase, *, filename: str, author: str, source: str = "upload",
        topic_id: str | None = None, escalation_ids: list[str] | None = None,
    ) -> Draft:
        """Keep an already validated knowledge base as a draft (for a week)."""
        draft = Draft(id="d" + secrets.token_hex(6), filename=filename, author=author,
                      created_at=datetime.now(UTC), source=source, topic_id=topic_id,
                      escalation_ids=escalation_ids or [], kb=kb)
        await self._redis.set(kb_draft_key(draft.id), draft.model_dump_json(), ex=DRAFT_TTL_SECONDS)
        logger.info("draft %s from %s by %s (%d entries)", draft.id, filename, author,
                    len(kb.entries))
        return draft

    # --- internals ----------------------------------------------------------------------------

    async def _index_for(
        self, kb: KnowledgeBase, *, info: VersionInfo | None = None,
    ) -> KnowledgeIndex:
        """A (cached) index of ``kb``; the runtime's own index when it answers from ``kb``."""
        current = self.runtime.service.index
        if current is not None and current.kb == kb and (info is None or current.info == info):
            return current
        sha = kb_sha(kb)
        async with self._build_lock:
            index = self._indexes.get(sha)
            if index is None:
                index = await self.runtime.build(kb, info=info)
                self._indexes[sha] = index
                while len(self._indexes) > _INDEX_CACHE_SIZE:
                    old, _ = self._indexes.popitem(last=False)
                    for key in [k for k in self._pairs if k[0] == old]:
                        del self._pairs[key]
            self._indexes.move_to_end(sha)
        if info is not None and index.info != info:
            index = dataclasses.replace(index, info=info)
        return index

    async def _live_service(self) -> KnowledgeService | None:
        live_id = await self.store.live_id()
        if live_id is None:
            return None
        current = self.runtime.service
        if current.version is not None and current.version.id == live_id:
            return current
        info, kb = await self.store.get(live_id)
        index = await self._index_for(kb, info=info)
        return KnowledgeService(index, settings=self.runtime.settings)

    async def _gate(self, kb: KnowledgeBase, index: KnowledgeIndex) -> GateReport:
        live = await self._live_service()
        tests = union_tests(live.index.kb if live and live.index else None, kb)
        draft = KnowledgeService(index, settings=self.runtime.settings)
        return await asyncio.to_thread(run_gate, live, draft, tests, now=self.now())

    async def _close_pairs(
        self, index: KnowledgeIndex, touched: frozenset[str],
    ) -> list[ClosePair]:
        key = (kb_sha(index.kb), touched)
        if key not in self._pairs:
            self._pairs[key] = await asyncio.to_thread(
                close_pairs, index, touched=touched, limit=MAX_CLOSE_PAIRS)
        return self._pairs[key]

    async def _topic_encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = (await asyncio.to_thread(shared_encoders, self.runtime.settings))[0]
        return self._encoder

    async def _category_guess(self, topic: Topic) -> Category | None:
        live = await self._live_service()
        if live is None:
            return None
        candidates = await asyncio.to_thread(live.search, topic.question, k=1)
        return candidates[0].category if candidates else None


def merged(base: KnowledgeBase, update: KnowledgeBase) -> KnowledgeBase:
    """``base`` with the entries of ``update`` added or, for the same id, replacing them in place.

    Test questions are the union (``update``'s win for the same wording and time).
    """
    incoming = {e.id: e for e in update.entries}
    entries = [incoming.pop(e.id, e) for e in base.entries]
    entries += [e for e in update.entries if e.id in incoming]
    tests = {(t.text, t.at): t for t in (*base.tests, *update.tests)}
    return KnowledgeBase(entries=tuple(entries), tests=tuple(tests.values()))


def _info(draft: Draft) -> DraftInfo:
    return DraftInfo(id=draft.id, filename=draft.filename, author=draft.author,
                     created_at=draft.created_at, source=draft.source, topic_id=draft.topic_id,
                     entries=len(draft.kb.entries), tests=len(draft.kb.tests))


def _taken_texts(kb: KnowledgeBase, *, except_id: str | None = None) -> set[str]:
    """Comparison keys of every evergreen question and variant (two entries may not share one)."""
    return {
        _key(t) for e in kb.entries
        if e.id != except_id and e.campaign is None and e.valid_from is None
        and e.valid_until is None for t in e.texts
    }


def _key(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())


def _fresh(texts: list[str], taken: set[str]) -> list[str]:
    out: list[str] = []
    for text in texts:
        key = _key(text)
        if key and key not in taken:
            taken.add(key)
            out.append(text.strip())
    return out


def _with_variants(base: KnowledgeBase, entry_id: str, topic: Topic) -> KnowledgeBase:
    entry = base.entry(entry_id)
    if entry is None:
        message = f"the live version has no entry {entry_id!r}"
        raise ValidationFailed([_problem("entry_id", message)])
    taken = _taken_texts(base, except_id=entry_id) | {_key(t) for t in entry.texts}
    added = _fresh([topic.question, *topic.examples], taken)
    updated = entry.model_copy(update={"variants": (*entry.variants, *added)})
    return base.model_copy(update={"entries": tuple(
        updated if e.id == entry_id else e for e in base.entries)})


def _new_entry(
    base: KnowledgeBase, topic: Topic, *, new_id: str | None, question: str | None,
    answer: str | None, category: Category | str | None, guess: Category | None,
) -> Entry:
    taken = _taken_texts(base)
    texts = _fresh([question or topic.question, *topic.examples], taken)
    reply = (answer or "").strip() or (topic.agent_replies[0] if topic.agent_replies else "")
    problems = []
    if not texts:
        problems.append(_problem("question", "every example is already another entry's question"))
    if not reply:
        problems.append(_problem("answer", "no agent replied to this topic; write the answer"))
    chosen: Category | str | None = category or guess
    if chosen is None:
        problems.append(_problem("category", "choose a category"))
    if problems:
        raise ValidationFailed(problems)
    assert chosen is not None
    try:
        return Entry(id=new_id or f"learned-{topic.id}", question=texts[0],
                     variants=tuple(texts[1:]), answer=reply, category=Category(chosen))
    except (ValidationError, ValueError) as exc:
        raise ValidationFailed([_problem("entry", str(exc))]) from exc


def _problem(field: str, message: str) -> Problem:
    return Problem("<topic draft>", "entry", field, message)
