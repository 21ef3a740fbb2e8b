"""What the handoff tells the shopper, in Chinese, English, or both when the language is unknown."""

from __future__ import annotations

import math

from kefu.conversation import Button

BACK_TO_BOT_PAYLOAD = "/back_to_bot"
"""Quick-reply payload with which a waiting shopper leaves the queue and talks to the bot again."""

GROUP_NAMES = {
    "presale": ("售前", "pre-sales"),
    "aftersale": ("售后", "after-sales"),
    "logistics": ("物流", "logistics"),
}


def _pick(language: str | None, zh: str, en: str) -> str:
    if language and language.lower().startswith("en"):
        return en
    if language and language.lower().startswith("zh"):
        return zh
    return f"{zh}\n{en}"


def _minutes(seconds: int) -> int:
    return max(1, math.ceil(seconds / 60))


def group_name(group: str, language: str | None) -> str:
    """The shopper-facing name of a skill group."""
    zh, en = GROUP_NAMES.get(group, (group, group))
    return _pick(language, zh, en) if language else zh


def queued(language: str | None, position: int, wait_seconds: int) -> str:
    """Told when the ticket enters the queue or moves in it."""
    ahead, minutes = position - 1, _minutes(wait_seconds)
    if ahead == 0:
        return _pick(language, f"正在为您转接人工客服，您是下一位，预计等待约 {minutes} 分钟。",
                     f"Connecting you to an agent: you are next, about {minutes} min.")
    return _pick(language,
                 f"正在为您转接人工客服，您前面还有 {ahead} 位，预计等待约 {minutes} 分钟。",
                 f"Connecting you to an agent: {ahead} ahead of you, about {minutes} min.")


def offline(language: str | None, in_hours: bool) -> str:
    """Told when no agent can answer now: the message becomes a ticket for later."""
    if in_hours:
        return _pick(language,
                     "当前暂无客服在线。请直接留言（订单号、问题描述），客服上线后会第一时间回复您。",
                     "No agent is online right now. Leave a message (order number, what happened) "
                     "and an agent will reply as soon as one is back.")
    return _pick(language,
                 "现在不在人工客服服务时间。请直接留言（订单号、问题描述），客服上班后会尽快回复您。",
                 "Our agents are outside service hours. Leave a message (order number, what "
                 "happened) and we will reply when they are back.")


def joined(language: str | None, agent_name: str) -> str:
    """Told when an agent claims the ticket."""
    return _pick(language, f"客服 {agent_name} 已接入，正在为您服务。",
                 f"Agent {agent_name} has joined the chat.")


def requeued(language: str | None, position: int, wait_seconds: int) -> str:
    """Told when the agent left and the ticket is back in the queue."""
    return _pick(language, "客服连接中断，正在为您重新转接。", "The agent got disconnected; "
                 "we are connecting you again.") + "\n" + queued(language, position, wait_seconds)


def transferred_group(language: str | None, group: str) -> str:
    """Told when the ticket moves to another skill group, keeping its place (no new estimate)."""
    name = group_name(group, "zh"), group_name(group, "en")
    return _pick(language, f"已为您转接{name[0]}客服，请稍候。",
                 f"You have been transferred to our {name[1]} team; please hold on.")


def transferred_agent(language: str | None, agent_name: str) -> str:
    """Told when the ticket goes to another agent directly."""
    return _pick(language, f"已为您转接客服 {agent_name}。",
                 f"You have been transferred to agent {agent_name}.")


def closed(language: str | None, return_to_bot: bool) -> str:
    """Told when the agent resolves the ticket; asks for a rating."""
    tail = ""
    if return_to_bot:
        tail = _pick(language, "如还有其他问题，可以继续问我（智能助手）。",
                     "If you have more questions, just ask me (the assistant).")
    head = _pick(language, "本次人工服务已结束，请为本次服务打分（1–5 分）：",
                 "This chat with our agent has ended. Please rate it (1–5):")
    return f"{head}\n{tail}".strip()


def reopened(language: str | None, agent_name: str) -> str:
    """Told when an agent reopens a resolved chat the shopper wrote to again."""
    return _pick(language, f"客服 {agent_name} 已重新接入，继续为您服务。",
                 f"Agent {agent_name} is back in the chat.")


def cancelled(language: str | None) -> str:
    """Told when the shopper leaves the queue."""
    return _pick(language, "已为您取消人工排队，智能助手继续为您服务。",
                 "You left the queue; the assistant is back.")


def rating_buttons() -> list[Button]:
    """Quick replies 1–5 whose payloads the gateway routes to ``HandoffService.rate``."""
    return [Button(title=f"{n} ★", payload=f'/rate{{"score":{n}}}') for n in range(1, 6)]


def back_to_bot_button(language: str | None) -> Button:
    """Quick reply to leave the queue."""
    title = _pick(language, "返回智能助手", "Back to the assistant").replace("\n", " / ")
    return Button(title=title, payload=BACK_TO_BOT_PAYLOAD)
