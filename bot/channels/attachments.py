"""Photos, stickers, voice notes and files from shoppers: never silently dropped.

The bot reads text only. In bot mode the shopper is told so, in their language, and offered a
person (a ``/request_human`` button); a caption is still answered as text. The exception: while
an after-sale flow asks for a photo (the conversation's profile says ``awaiting=photo``, see
``actions/aftersale.py``), a photo is the answer, sent on to Rasa with its file reference.
While a human owns the conversation the attachment goes into the ticket as a shopper message
the agent sees (``[图片] file_id=…``, with the details in the turn's ``meta["attachment"]``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum

from actions.aftersale import AWAITING, photo_message
from bot.gateway import Gateway, HandoffPort, Mode, OutMessage, Reply
from kefu.conversation import Button, ConversationStore, Role, conversation_id

REQUEST_HUMAN_PAYLOAD = "/request_human"


class AttachmentKind(StrEnum):
    """What the shopper sent instead of (or besides) text."""

    PHOTO = "photo"  # 图片
    STICKER = "sticker"  # 表情
    VOICE = "voice"  # 语音
    AUDIO = "audio"  # 音频
    VIDEO = "video"  # 视频 (also round video notes and GIFs)
    DOCUMENT = "document"  # 文件
    LOCATION = "location"  # 位置
    CONTACT = "contact"  # 名片
    OTHER = "other"  # polls, dice, games…

    def label(self, language: str = "zh") -> str:
        """Short name of the kind for shoppers and agents."""
        zh, en = _LABELS[self]
        return en if language == "en" else zh


_LABELS = {
    AttachmentKind.PHOTO: ("图片", "photos"),
    AttachmentKind.STICKER: ("表情", "stickers"),
    AttachmentKind.VOICE: ("语音", "voice messages"),
    AttachmentKind.AUDIO: ("音频", "audio files"),
    AttachmentKind.VIDEO: ("视频", "videos"),
    AttachmentKind.DOCUMENT: ("文件", "files"),
    AttachmentKind.LOCATION: ("位置", "locations"),
    AttachmentKind.CONTACT: ("名片", "contacts"),
    AttachmentKind.OTHER: ("消息", "this kind of message"),
}


@dataclass(frozen=True)
class Attachment:
    """A non-text message, described well enough for an agent to fetch or act on it."""

    kind: AttachmentKind
    file_id: str | None = None  # the channel's handle for downloading the file
    detail: str = ""  # file name and type, sticker emoji, coordinates, phone number…
    caption: str = ""

    def as_text(self) -> str:
        """The transcript line agents read, e.g. ``[图片] file_id=AgAD… 这双鞋有41码吗``."""
        parts = [f"[{self.kind.label('zh')}]"]
        if self.file_id:
            parts.append(f"file_id={self.file_id}")
        if self.detail:
            parts.append(self.detail)
        if self.caption:
            parts.append(self.caption)
        return " ".join(parts)

    def as_meta(self) -> dict[str, str]:
        """JSON-safe details for the turn's meta."""
        return {k: str(v) for k, v in asdict(self).items() if v}


def cannot_read(kind: AttachmentKind, language: str) -> str:
    """What the bot says about an attachment it cannot read."""
    if language == "en":
        return (f"Sorry, I can only read text and can't open {kind.label('en')}. Please describe "
                "your question in words, or tap below to talk to a person.")
    return (f"抱歉，我目前只能看懂文字，无法查看{kind.label('zh')}。请用文字描述您的问题，"
            "或点击下方按钮联系人工客服。")


def human_button(language: str) -> Button:
    """The quick reply that asks for a person."""
    return Button(title="Talk to a person" if language == "en" else "转人工客服",
                  payload=REQUEST_HUMAN_PAYLOAD)


class AttachmentDesk:
    """Routes attachments like :class:`Gateway` routes text: to the ticket, or a polite refusal."""

    def __init__(self, gateway: Gateway, conversations: ConversationStore,
                 handoff: HandoffPort) -> None:
        self._gateway = gateway
        self._conversations = conversations
        self._handoff = handoff

    async def receive(self, channel: str, chat: str, attachment: Attachment, *,
                      language: str = "zh", display_name: str | None = None) -> Reply:
        """Handle one attachment and return what to send back to the shopper."""
        conv = conversation_id(channel, chat)
        meta = {"attachment": attachment.as_meta()}
        if await self._handoff.open_ticket(conv) is not None:
            await self._handoff.add_shopper_message(conv, attachment.as_text(), meta=meta)
            return Reply(messages=[], mode=Mode.HANDOFF)
        if attachment.kind is AttachmentKind.PHOTO and attachment.file_id \
                and (await self._conversations.profile(conv)).get(AWAITING) == "photo":
            return await self._gateway.handle(channel, chat,
                                              photo_message(channel, attachment.file_id),
                                              display_name=display_name)
        await self._conversations.append(conv, Role.SHOPPER, attachment.as_text(), meta=meta)
        notice = await self._conversations.append(
            conv, Role.BOT, cannot_read(attachment.kind, language),
            buttons=[human_button(language)], meta={"attachment_notice": attachment.kind.value})
        messages = [OutMessage(id=notice.id, text=notice.text, buttons=notice.buttons)]
        if not attachment.caption.strip():
            return Reply(messages=messages, mode=Mode.BOT)
        answer = await self._gateway.handle(channel, chat, attachment.caption,
                                            display_name=display_name)
        return Reply(messages=messages + answer.messages, mode=answer.mode)
