"""Telegram channel: python-telegram-bot 22 inside the kefu gateway process.

Handlers are thin: an update becomes a :class:`bot.gateway.Gateway` call (text, commands,
button presses) or an :class:`AttachmentDesk` call (photos, stickers, voice, files), and the
:class:`Reply` becomes ``sendMessage`` calls. Agent and system messages (agent replies, queue
positions, rating requests) reach Telegram through the :class:`OutboundWorker` (consumer group
``telegram``), at least once and de-duplicated by turn id.

Two ways to receive updates, both started by the gateway lifespan (:meth:`TelegramChannel.start`):

- **webhook** (production, ``KEFU_TELEGRAM_WEBHOOK_URL`` set): the Application is built with
  ``updater(None)``; Telegram POSTs to ``/telegram/webhook``, every request must carry the
  secret in ``X-Telegram-Bot-Api-Secret-Token``, and the update is put on
  ``application.update_queue`` for the running Application. ``setWebhook`` is called at start.
- **long polling** (development, token but no webhook URL): the Updater polls ``getUpdates``
  (after ``deleteWebhook``). Run one gateway process per bot token in this mode.

Messages are sent as plain text (no parse mode, nothing to escape), split at Telegram's 4096
limit; flood limits (``RetryAfter``) are waited out and network errors retried.

A photo's file id is recorded against the chat that sent it (``gw_channel_photo_key``): the
console's photo routes fetch a Telegram file only for that conversation, so a shopper who types
``/send_photo{"photo": "photo:telegram:<someone else's file id>"}`` shows the agent nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar

import redis.asyncio as aioredis
from fastapi import APIRouter, Request, Response
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
    User,
)
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.warnings import PTBDeprecationWarning

from bot.channels.attachments import Attachment, AttachmentDesk, AttachmentKind
from bot.channels.callbacks import CallbackCodec
from bot.channels.delivery import DeliveryState, OutboundWorker, announce, stop_task
from bot.channels.errors import (
    DeliveryFailed,
    DeliveryRejected,
    PhotoNotFound,
    UnreadableUpdate,
    WebhookRefused,
)
from bot.channels.formatting import split_text
from bot.gateway import Gateway, HandoffPort, OutMessage, Reply
from bot.gateway.errors import InvalidMessage, UpstreamUnavailable
from bot.gateway.settings import BotSettings
from kefu.conversation import Button, ConversationStore, Role, Turn, conversation_id
from kefu.keys import gw_channel_photo_key

logger = logging.getLogger(__name__)

CHANNEL = "telegram"
WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
PHOTO_RETENTION_SECONDS = 14 * 86400  # whose photo a file id is, kept as long as web photos
ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]

# Commands a shopper can type, and the payload the gateway gets instead.
COMMAND_PAYLOADS = {"start": "/greet", "help": "/greet", "human": "/request_human"}

_T = TypeVar("_T")

_NOTICES = {
    "invalid": ("抱歉，这条消息无法处理（可能太长了），请精简后再发。",
                "Sorry, I can't process that message (it may be too long). Please shorten it."),
    "unavailable": ("系统正在忙，您的消息已记录，请稍后再试。",
                    "We're having trouble right now. Your message is saved; please try again "
                    "in a moment."),
    "expired": ("这个按钮已过期，请直接输入您的问题。",
                "That button has expired; please type your question instead."),
}


class TelegramChannel:
    """Telegram ⇄ gateway: builds the Application, receives updates, sends replies."""

    def __init__(self, gateway: Gateway, attachments: AttachmentDesk,
                 conversations: ConversationStore, redis: aioredis.Redis, *, token: str,
                 webhook_url: str | None = None, webhook_secret: str | None = None,
                 base_url: str | None = None, concurrent_updates: int = 64,
                 send_attempts: int = 5, max_flood_wait_seconds: float = 30.0,
                 poll_timeout_seconds: float = 10.0,
                 photo_retention_seconds: int = PHOTO_RETENTION_SECONDS,
                 worker_options: dict[str, Any] | None = None) -> None:
        self._gateway = gateway
        self._photo_retention = photo_retention_seconds
        self._attachments = attachments
        self._redis = redis
        self._webhook_url = webhook_url
        self._webhook_secret = webhook_secret
        self._send_attempts = send_attempts
        self._max_flood_wait = max_flood_wait_seconds
        self._poll_timeout = poll_timeout_seconds
        self.mode = "webhook" if webhook_url else "polling"
        builder = (Application.builder().token(token).concurrent_updates(concurrent_updates)
                   .job_queue(None))
        if base_url:
            root = base_url.rstrip("/")
            builder = builder.base_url(f"{root}/bot").base_file_url(f"{root}/file/bot")
        if webhook_url:
            builder = builder.updater(None)
        self.application = builder.build()
        self.application.add_handler(CallbackQueryHandler(self._on_button))
        private = filters.ChatType.PRIVATE
        self.application.add_handler(MessageHandler(private & filters.TEXT, self._on_text))
        self.application.add_handler(MessageHandler(
            private & ~filters.TEXT & ~filters.StatusUpdate.ALL, self._on_attachment))
        self.application.add_error_handler(self._on_error)
        self.codec = CallbackCodec(redis)
        self.worker = OutboundWorker(redis, conversations, self.deliver, channel=CHANNEL,
                                     **(worker_options or {}))
        self.ledger = self.worker.ledger
        self.ready = asyncio.Event()
        self._locks = _ChatLocks()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: BotSettings, gateway: Gateway,
                      conversations: ConversationStore, handoff: HandoffPort,
                      redis: aioredis.Redis) -> TelegramChannel | None:
        """The channel configured by ``KEFU_TELEGRAM_*``, or None when no token is set."""
        if settings.telegram_token is None:
            return None
        secret = settings.telegram_webhook_secret
        return cls(gateway, AttachmentDesk(gateway, conversations, handoff), conversations,
                   redis, token=settings.telegram_token.get_secret_value(),
                   webhook_url=settings.telegram_webhook_url,
                   webhook_secret=secret.get_secret_value() if secret else None,
                   base_url=settings.telegram_base_url,
                   photo_retention_seconds=int(settings.web_photo_retention_days * 86400))

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect in the background (retrying while Telegram is unreachable), then deliver."""
        self._task = asyncio.create_task(self._run(), name="telegram-channel")

    async def stop(self) -> None:
        """Stop polling, the Application and the outbound worker."""
        self.worker.stopping = True
        if self._task is not None:
            await stop_task(self._task)
            self._task = None
        app = self.application
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await app.shutdown()
        self.ready.clear()

    async def _run(self) -> None:
        delay = 1.0
        while True:
            try:
                await self._connect()
                break
            except (TelegramError, OSError) as exc:
                logger.warning("Telegram not reachable (%s); retrying in %.0fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(60.0, delay * 2)
        self.ready.set()
        logger.info("Telegram channel running (%s mode)", self.mode)
        await self.worker.run()

    async def _connect(self) -> None:
        app = self.application
        await app.initialize()
        if self._webhook_url:
            await app.bot.set_webhook(self._webhook_url, secret_token=self._webhook_secret,
                                      allowed_updates=ALLOWED_UPDATES)
        elif app.updater is not None and not app.updater.running:
            await app.updater.start_polling(
                timeout=timedelta(seconds=self._poll_timeout), allowed_updates=ALLOWED_UPDATES)
        if not app.running:
            await app.start()

    # --- webhook ------------------------------------------------------------------------------

    def create_router(self) -> APIRouter:
        """``POST /telegram/webhook``: checks the secret, queues the update, answers at once."""
        router = APIRouter()

        @router.post(WEBHOOK_PATH, include_in_schema=False)
        async def telegram_webhook(request: Request) -> Response:
            if not self._secret_matches(request.headers.get(SECRET_HEADER)):
                raise WebhookRefused("wrong or missing secret token", channel=CHANNEL)
            try:
                data = await request.json()
                update = Update.de_json(data, self.application.bot)
            except (ValueError, TypeError, KeyError) as exc:
                raise UnreadableUpdate("not a Telegram update", channel=CHANNEL) from exc
            await self.application.update_queue.put(update)
            return Response(status_code=200)

        return router

    def _secret_matches(self, given: str | None) -> bool:
        if not self._webhook_secret or given is None:
            return False
        return hmac.compare_digest(given.encode(), self._webhook_secret.encode())

    # --- handlers (thin: update in, service call, messages out) --------------------------------

    async def _on_text(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        message, chat = update.effective_message, update.effective_chat
        if message is None or chat is None or not message.text:
            return
        text = shopper_text(message.text)
        user = update.effective_user
        await self._serve(chat.id, user, lambda: self._gateway.handle(
            CHANNEL, str(chat.id), text, display_name=_name(user)))

    async def _on_button(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        query, chat = update.callback_query, update.effective_chat
        if query is None or query.data is None:
            return
        payload = await self.codec.decode(query.data)
        with contextlib.suppress(TelegramError):
            await query.answer(text=_button_title(query.message, query.data))
        if isinstance(query.message, Message) and query.message.reply_markup is not None:
            with contextlib.suppress(TelegramError):  # one press per keyboard: no double ratings
                await query.edit_message_reply_markup(reply_markup=None)
        if chat is None:
            return
        user = update.effective_user
        if payload is None:
            await self._notice(chat.id, "expired", _language(user))
            return
        await self._serve(chat.id, user, lambda: self._gateway.handle(
            CHANNEL, str(chat.id), payload, display_name=_name(user)))

    async def _on_attachment(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        message, chat = update.effective_message, update.effective_chat
        if message is None or chat is None:
            return
        user, attachment = update.effective_user, attachment_of(message)
        if attachment.kind is AttachmentKind.PHOTO and attachment.file_id:
            await self._redis.set(gw_channel_photo_key(CHANNEL, attachment.file_id),
                                  conversation_id(CHANNEL, str(chat.id)),
                                  ex=self._photo_retention)
        await self._serve(chat.id, user, lambda: self._attachments.receive(
            CHANNEL, str(chat.id), attachment, language=_language(user),
            display_name=_name(user)))

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        logger.error("Telegram update %r failed", update, exc_info=context.error)

    async def _serve(self, chat_id: int, user: User | None,
                     call: Callable[[], Awaitable[Reply]]) -> None:
        """Run one shopper message through the gateway and send the reply; one at a time a chat."""
        async with self._locks.hold(chat_id):
            with contextlib.suppress(TelegramError):
                await self.application.bot.send_chat_action(chat_id, "typing")
            try:
                reply = await call()
            except InvalidMessage:
                await self._notice(chat_id, "invalid", _language(user))
                return
            except UpstreamUnavailable:
                await self._notice(chat_id, "unavailable", _language(user))
                return
            await self.send_reply(chat_id, reply.messages)

    # --- sending ------------------------------------------------------------------------------

    async def send_reply(self, chat_id: int, messages: Sequence[OutMessage]) -> None:
        """Send the gateway's reply; a message that cannot be sent now is left to the worker."""
        for message in messages:
            await self._send_message(chat_id, message)

    async def _send_message(self, chat_id: int, message: OutMessage) -> None:
        if message.id and await self.ledger.claim(message.id) is not DeliveryState.CLAIMED:
            return  # the outbound worker sent it already or is sending it now
        try:
            await self.send_text(chat_id, message.text, message.buttons)
        except DeliveryRejected as exc:
            logger.warning("Telegram refused a message to %s: %s", chat_id, exc)
        except Exception as exc:
            if not message.id:
                raise
            logger.warning("sending %s to %s failed (%s); the outbound worker retries it",
                           message.id, chat_id, exc)
            await self.ledger.release(message.id)
            await announce(self._redis, conversation_id(CHANNEL, str(chat_id)), message.id)
            return
        if message.id:
            await self.ledger.done(message.id)

    async def deliver(self, conversation: str, turn: Turn) -> None:
        """Push one agent/system turn to its chat (the outbound worker's delivery function)."""
        chat_id = int(conversation.removeprefix(f"{CHANNEL}:"))
        text = turn.text
        if turn.role is Role.AGENT:
            name = str(turn.meta.get("agent_name") or "人工客服")
            text = f"【{name}】\n{text}"
        await self.send_text(chat_id, text, turn.buttons)

    async def photo(self, file_id: str, conversation: str) -> tuple[bytes, str]:
        """A shopper's photo by its file id, for the console (Bot API getFile, then download).

        Only a photo that chat sent (recorded on arrival, for the retention time): a file id
        typed into another conversation's ``/send_photo{…}`` gives nothing.

        Raises:
            PhotoNotFound: not a photo of ``conversation``, or its record expired (404).
        """
        owner = await self._redis.get(gw_channel_photo_key(CHANNEL, file_id))
        if owner != conversation:
            raise PhotoNotFound(f"no photo {file_id[:64]} in this conversation", channel=CHANNEL)
        file = await self._call(lambda: self.application.bot.get_file(file_id))
        content = bytes(await file.download_as_bytearray())
        return content, "image/png" if content.startswith(b"\x89PNG") else "image/jpeg"

    async def send_text(self, chat_id: int, text: str, buttons: Sequence[Button] = ()) -> None:
        """Send ``text`` in as many messages as needed; the buttons go with the last one."""
        chunks = split_text(text) or ["…"]
        markup = await self._keyboard(buttons) if buttons else None
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            await self._call(partial(self.application.bot.send_message, chat_id, chunk,
                                     reply_markup=markup if last else None))

    async def _keyboard(self, buttons: Sequence[Button]) -> InlineKeyboardMarkup:
        keys = [InlineKeyboardButton(b.title[:64] or "…", callback_data=await self.codec.encode(
            b.payload)) for b in buttons]
        if all(len(b.title) <= 6 for b in buttons) and len(keys) <= 8:
            return InlineKeyboardMarkup([keys])  # short titles (ratings) fit on one row
        return InlineKeyboardMarkup([[key] for key in keys])

    async def _notice(self, chat_id: int, kind: str, language: str) -> None:
        zh, en = _NOTICES[kind]
        try:
            await self.send_text(chat_id, en if language == "en" else zh)
        except Exception as exc:
            logger.warning("could not tell %s about %s: %s", chat_id, kind, exc)

    async def _call(self, request: Callable[[], Awaitable[_T]]) -> _T:
        """One Bot API call with flood-limit waits and network retries (backoff 0.5 s … 4 s)."""
        for attempt in range(1, self._send_attempts + 1):
            last = attempt == self._send_attempts
            try:
                return await request()
            except RetryAfter as exc:
                wait = retry_after_seconds(exc)
                if last or wait > self._max_flood_wait:
                    raise DeliveryFailed(f"flood limit, retry in {wait:.0f}s", channel=CHANNEL,
                                         retry_after=wait) from exc
                logger.info("Telegram flood limit: waiting %.0fs", wait)
                await asyncio.sleep(wait)
            except (Forbidden, BadRequest) as exc:
                raise DeliveryRejected(str(exc), channel=CHANNEL) from exc
            except NetworkError as exc:  # includes TimedOut
                if last:
                    raise DeliveryFailed(str(exc), channel=CHANNEL) from exc
                await asyncio.sleep(min(4.0, 0.5 * 2 ** (attempt - 1)))
        raise AssertionError("unreachable")


class _ChatLocks:
    """One lock per chat while it has messages in progress (concurrent chats, ordered chats)."""

    def __init__(self) -> None:
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, chat_id: int) -> AsyncIterator[None]:
        lock, users = self._locks.get(chat_id, (asyncio.Lock(), 0))
        self._locks[chat_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[chat_id]
            if users <= 1:
                del self._locks[chat_id]
            else:
                self._locks[chat_id] = (lock, users - 1)


def shopper_text(text: str) -> str:
    """What the gateway gets for a typed message: known commands become payloads.

    ``/start`` and ``/help`` greet, ``/human`` asks for a person; another ``/word`` loses its
    slash so it is read as text rather than as an intent payload.
    """
    if not text.startswith("/"):
        return text
    command, _, rest = text[1:].partition(" ")
    command = command.split("@", 1)[0].lower()
    if command in COMMAND_PAYLOADS:
        return COMMAND_PAYLOADS[command]
    return f"{command} {rest}".strip() or text


def attachment_of(message: Message) -> Attachment:
    """Describe a non-text message (the largest photo size; a GIF is a video)."""
    caption = message.caption or ""
    if message.photo:
        return Attachment(AttachmentKind.PHOTO, message.photo[-1].file_id, caption=caption)
    if message.sticker:
        return Attachment(AttachmentKind.STICKER, message.sticker.file_id,
                          detail=message.sticker.emoji or "")
    if message.voice:
        return Attachment(AttachmentKind.VOICE, message.voice.file_id, caption=caption)
    for media in (message.animation, message.video, message.video_note):
        if media:
            return Attachment(AttachmentKind.VIDEO, media.file_id, caption=caption)
    if message.audio:
        return Attachment(AttachmentKind.AUDIO, message.audio.file_id,
                          detail=message.audio.file_name or "", caption=caption)
    if message.document:
        doc = message.document
        detail = " ".join(p for p in (doc.file_name, doc.mime_type) if p)
        return Attachment(AttachmentKind.DOCUMENT, doc.file_id, detail=detail, caption=caption)
    if message.location:
        loc = message.location
        return Attachment(AttachmentKind.LOCATION, detail=f"{loc.latitude},{loc.longitude}")
    if message.contact:
        contact = message.contact
        return Attachment(AttachmentKind.CONTACT,
                          detail=f"{contact.first_name} {contact.phone_number}".strip())
    return Attachment(AttachmentKind.OTHER, caption=caption)


def retry_after_seconds(exc: RetryAfter) -> float:
    """``RetryAfter.retry_after`` in seconds, whether PTB gives an int or a timedelta."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value: Any = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _button_title(message: object, data: str) -> str | None:
    markup = message.reply_markup if isinstance(message, Message) else None
    for row in markup.inline_keyboard if markup else ():
        for button in row:
            if button.callback_data == data:
                return button.text[:200]
    return None


def _language(user: User | None) -> str:
    code = (user.language_code or "") if user else ""
    return "en" if code and not code.lower().startswith("zh") else "zh"


def _name(user: User | None) -> str | None:
    return user.full_name if user else None
