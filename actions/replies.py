"""What the bot says, in Chinese or English: texts and quick-reply buttons, no Rasa.

Buttons are ``{"title", "payload"}`` dicts, the shape rasa-sdk's dispatcher and the REST channel
pass through unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from handoff.messages import group_name
from handoff.models import HandoffReason
from kefu.language import Language
from knowledge.models import Candidate

HELPFUL_PAYLOAD = "/feedback_helpful"
NOT_HELPFUL_PAYLOAD = "/feedback_not_helpful"
HUMAN_PAYLOAD = "/request_human"
NONE_FIT_PAYLOAD = "/none_of_these"
LEAVE_MESSAGE_PAYLOAD = "/leave_message"
KEEP_WITH_BOT_PAYLOAD = "/keep_with_bot"
MAX_OPTIONS = 3


@dataclass(frozen=True)
class Reply:
    """One bot message."""

    text: str
    buttons: list[dict[str, str]] = field(default_factory=list)


def _pick(lang: Language, zh: str, en: str) -> str:
    return en if lang is Language.EN else zh


def choose_payload(entry_id: str) -> str:
    """The payload of a clarification button: Rasa reads it as intent + entity."""
    return "/choose_option" + json.dumps({"entry_id": entry_id}, separators=(",", ":"))


def feedback_buttons(lang: Language) -> list[dict[str, str]]:
    """The "was this helpful?" buttons under an answer."""
    return [
        {"title": _pick(lang, "有帮助 👍", "Helpful 👍"), "payload": HELPFUL_PAYLOAD},
        {"title": _pick(lang, "没帮助 👎", "Not helpful 👎"), "payload": NOT_HELPFUL_PAYLOAD},
    ]


def answer(text: str, lang: Language) -> Reply:
    """An entry's answer, asking whether it helped."""
    return Reply(text, feedback_buttons(lang))


def human_button(lang: Language) -> dict[str, str]:
    """The quick reply that asks for a person."""
    return {"title": _pick(lang, "转人工", "Talk to a person"), "payload": HUMAN_PAYLOAD}


def clarify(options: Sequence[Candidate], lang: Language) -> Reply:
    """A question back: a few close candidates as buttons, and always a way out.

    Beside the options: "都不是 / None of these" (the shopper may rephrase, or ask for a person)
    and "转人工".
    """
    buttons = [
        {"title": option.question, "payload": choose_payload(option.entry_id)}
        for option in options[:MAX_OPTIONS]
    ]
    buttons.append({"title": _pick(lang, "都不是", "None of these"), "payload": NONE_FIT_PAYLOAD})
    buttons.append(human_button(lang))
    return Reply(_pick(lang, "您是想问下面哪一个？", "Which of these did you mean?"), buttons)


def none_fit(lang: Language) -> Reply:
    """After "None of these": rephrase, or a person."""
    return Reply(_pick(
        lang,
        "好的，看来我没理解对。您可以换个说法再问一次，或者转人工客服。",
        "I see, I got that wrong. You can put your question another way, or talk to a person.",
    ), [human_button(lang)])


def nobody_online(group: str, in_hours: bool, lang: Language) -> Reply:
    """Said before moving a shopper when nobody of the group can answer now: they choose."""
    zh_group, en_group = group_name(group, "zh"), group_name(group, "en")
    if in_hours:
        zh = f"现在{zh_group}客服都不在线，转过去要等客服上线后才能回复。"
        en = (f"Nobody from our {en_group} team is online right now, so a person can only "
              "reply later.")
    else:
        zh = f"现在不在人工客服服务时间，{zh_group}客服上班后才能回复。"
        en = f"Our {en_group} team is outside service hours, so a person can only reply later."
    return Reply(
        _pick(lang, zh + "您可以先留言，客服上线后回复您；也可以继续问我。",
              en + " You can leave them a message, or keep asking me."),
        [{"title": _pick(lang, "留言给客服", "Leave a message"), "payload": LEAVE_MESSAGE_PAYLOAD},
         {"title": _pick(lang, "继续问智能助手", "Keep asking the assistant"),
          "payload": KEEP_WITH_BOT_PAYLOAD}],
    )


def keep_with_bot(lang: Language) -> Reply:
    """After choosing to keep trying with the bot."""
    return Reply(_pick(
        lang,
        "好的，我继续为您服务。您可以换个说法再问我。",
        "Sure, I'm still here. Try asking me in other words.",
    ))


def handing_off(reason: HandoffReason, lang: Language) -> Reply:
    """Told when a person takes over (the queue position follows from the handoff service)."""
    texts = {
        HandoffReason.EXPLICIT_REQUEST: (
            "好的，马上为您转接人工客服，请稍候。",
            "Sure, I'm connecting you to a person from our team. Please hold on.",
        ),
        HandoffReason.COMPLAINT: (
            "非常抱歉给您带来不好的体验！已为您优先转接人工客服，客服会尽快处理。",
            "I'm very sorry about this. I've passed you to a person from our team with priority; "
            "they will take care of it shortly.",
        ),
        HandoffReason.REPEATED_FAILURE: (
            "抱歉一直没能解决您的问题，已为您转接人工客服，请稍候。",
            "Sorry I couldn't sort this out. A person from our team will take over, "
            "please hold on.",
        ),
    }
    zh, en = texts.get(reason, (
        "这个问题我暂时无法准确回答，已为您转接人工客服，请稍候。",
        "I can't answer that reliably, so a person from our team will take over. Please hold on.",
    ))
    return Reply(_pick(lang, zh, en))


def handoff_failed(lang: Language) -> Reply:
    """Told when no ticket could be opened (Redis down, bad configuration)."""
    return Reply(_pick(
        lang,
        "抱歉，暂时无法转接人工客服，请稍后再试。",
        "Sorry, I can't reach our team right now. Please try again in a moment.",
    ))


def thanks_for_feedback(lang: Language) -> Reply:
    """After "helpful"."""
    return Reply(_pick(
        lang,
        "很高兴能帮到您！还有其他问题随时问我哦。",
        "Glad it helped! Ask me anytime if anything else comes up.",
    ))


def sorry_not_helpful(lang: Language) -> Reply:
    """After a first "not helpful": rephrase, or a person."""
    return Reply(
        _pick(
            lang,
            "抱歉没能帮到您。您可以换个说法再问一次，或者转人工客服。",
            "Sorry that didn't help. You can rephrase your question, or talk to a person.",
        ),
        [human_button(lang)],
    )


def order_noted(order_number: str, lang: Language) -> Reply:
    """Acknowledges a captured order number."""
    return Reply(_pick(
        lang,
        f"好的，已记录您的订单号 {order_number}。请问这个订单有什么问题？",
        f"Got it, order {order_number}. What can I help you with on this order?",
    ))


def order_missing(lang: Language) -> Reply:
    """Asks again when no order number could be read."""
    return Reply(_pick(
        lang,
        "没有识别到订单号，请发送 10–20 位数字的订单号（可带空格或横线），或以 E 开头的订单编号。",
        "I couldn't find an order number. Please send the 10–20 digit number (spaces or dashes "
        "are fine) or the id starting with E.",
    ))


def option_missing(lang: Language) -> Reply:
    """When a clarification choice no longer matches an entry."""
    return Reply(_pick(
        lang,
        "抱歉，没有找到这个选项，可以再描述一下您的问题吗？",
        "Sorry, I couldn't find that option. Could you describe your question again?",
    ))


_ORDINALS = {
    "1": 0, "一": 0, "first": 0, "2": 1, "二": 1, "second": 1, "3": 2, "三": 2, "third": 2,
}
_ORDINAL_RE = re.compile(
    r"(?:第\s*([123一二三])|option\s*([123])|\b(first|second|third)\b|^\s*([123])\s*$)"
)


def ordinal(text: str) -> int | None:
    """The 0-based option a typed choice refers to ("第二个", "option 2", "the first one", "3")."""
    match = _ORDINAL_RE.search(text.lower())
    if match is None:
        return None
    token = next(group for group in match.groups() if group)
    return _ORDINALS[token]
