"""The shopper's photos in a ticket's transcript, for the agent who reads it.

A shopper's photo stays in the transcript in one of the two shapes the channels write
(``bot/channels/attachments.py``): ``[图片] file_id=<id>`` with the details in the turn's
``meta["attachment"]`` (a photo outside a photo step, or any photo during a handoff; the text
alone, which a shopper could type, does not count), or the after-sale form's answer
``/send_photo{"photo": "photo:<channel>:<id>"}``. :func:`photo_ref`
reads both, :func:`mark_photos` puts the id in ``meta["photo"]`` of each such turn for the
console (which shows a thumbnail instead of the text), and :class:`TicketPhotos` gives an agent
who may read the ticket a photo of its conversation, fetched from the channel it came by. The
fetchers are passed in by the app (``bot/app.py``), as for the work-order photo route: this
package does not import the channels.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping

from handoff.errors import PhotoNotFound
from handoff.service import HandoffService
from kefu.accounts import Agent
from kefu.conversation import Role, Turn

PhotoFetcher = Callable[[str, str], Awaitable[tuple[bytes, str]]]
"""A channel's download of a shopper's photo by its file id and conversation: (bytes, type)."""

PHOTO_KEY = "photo"  # meta key the console reads
_FILE_ID = r"[A-Za-z0-9_-]{1,256}"
_FORM_ANSWER = re.compile(r'^/send_photo\{.*"photo:[a-z]+:(' + _FILE_ID + r')".*\}$')


def photo_ref(turn: Turn) -> str | None:
    """The file id of the shopper's photo ``turn`` is, else ``None``."""
    if turn.role is not Role.SHOPPER:
        return None
    attachment = turn.meta.get("attachment")
    if isinstance(attachment, dict) and attachment.get("kind") == "photo" \
            and attachment.get("file_id"):
        return str(attachment["file_id"])
    found = _FORM_ANSWER.match(turn.text)  # the ``[图片]`` line counts only with its meta
    return found.group(1) if found else None


def mark_photos(turns: Iterable[Turn]) -> list[Turn]:
    """The turns, each photo with its file id in ``meta["photo"]`` (the console's thumbnail)."""
    marked = []
    for turn in turns:
        ref = photo_ref(turn)
        marked.append(turn if ref is None else turn.model_copy(
            update={"meta": {**turn.meta, PHOTO_KEY: ref}}))
    return marked


def channel_of(conversation_id: str) -> str:
    """The channel a conversation is on (``web`` of ``web:alice``)."""
    return conversation_id.partition(":")[0]


class TicketPhotos:
    """A ticket's photos for the agents who may read its transcript."""

    def __init__(self, service: HandoffService, fetchers: Mapping[str, PhotoFetcher]) -> None:
        self._service = service
        self._fetchers = fetchers

    async def get(self, ticket_id: str, agent: Agent, ref: str) -> tuple[bytes, str]:
        """The photo ``ref`` of the ticket's conversation: (bytes, media type).

        Raises:
            NotAuthorized: the agent may not read this ticket (403).
            TicketNotFound: no such ticket (404).
            PhotoNotFound: not a photo of this conversation, or its channel cannot give it
                (expired, the channel failed) (404).
        """
        ticket = await self._service.get(ticket_id, agent)
        conversation = ticket.conversation_id
        turns = await self._service.conversations.transcript(conversation)
        if ref not in {photo_ref(t) for t in turns}:
            raise PhotoNotFound(f"no photo {ref[:64]} in the chat of {ticket_id}",
                                ticket_id=ticket_id, reason="not_in_conversation")
        fetch = self._fetchers.get(channel_of(conversation))
        if fetch is None:
            raise PhotoNotFound(f"no channel here gives the photos of {conversation}",
                                ticket_id=ticket_id, reason="unavailable")
        try:
            return await fetch(ref, conversation)
        except Exception as exc:  # the channel's failure, whatever its library raises
            raise PhotoNotFound(f"{channel_of(conversation)} did not give the photo",
                                ticket_id=ticket_id, reason="unavailable") from exc
