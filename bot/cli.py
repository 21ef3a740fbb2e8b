"""``kefu serve`` (the gateway) and ``kefu chat`` (talk to the running stack from a terminal)."""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import Any

import httpx


def register(subparsers: Any) -> None:
    """Add the gateway's sub-commands to the ``kefu`` parser."""
    serve = subparsers.add_parser("serve", help="run the kefu HTTP gateway")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.set_defaults(func=_serve)

    chat = subparsers.add_parser("chat", help="chat with the running stack in the terminal")
    chat.add_argument("--url", default="http://127.0.0.1:8000", help="gateway base URL")
    chat.add_argument("--sender", default=None, help="conversation id (default: a new one)")
    chat.add_argument("--token", default=None,
                      help="that conversation's token (printed when it began), to go back to it")
    chat.set_defaults(func=_chat)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bot.gateway.settings import get_settings
    from kefu.logs import log_config

    settings = get_settings()
    # Log lines are masked (kefu.logs); a WebSocket frame may not exceed the body limit.
    uvicorn.run("bot.app:create_app", factory=True, host=args.host or settings.host,
                port=args.port or settings.port, log_config=log_config(),
                ws_max_size=settings.body_limit_bytes, access_log=False)
    return 0


def _chat(args: argparse.Namespace) -> int:
    sender = args.sender or f"cli-{uuid.uuid4().hex[:8]}"
    print(f"kefu chat as '{sender}' — type a question, /human for a person, Ctrl-D to quit")
    last_id: str | None = None
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    with httpx.Client(base_url=args.url, timeout=60, headers=headers) as client:
        while True:
            try:
                text = input("you> ").strip()
            except EOFError:
                print()
                return 0
            if not text:
                last_id = _show_new(client, sender, last_id)
                continue
            try:
                response = client.post("/api/v1/messages", json={"sender": sender, "text": text})
            except httpx.HTTPError as exc:
                print(f"error: cannot reach {args.url}: {exc}", file=sys.stderr)
                return 1
            if response.status_code >= 400:
                detail = response.json().get("detail")
                print(f"error {response.status_code}: {detail}", file=sys.stderr)
                continue
            reply = response.json()
            if reply.get("conversation_token"):  # a new conversation: later calls must show it
                client.headers["Authorization"] = f"Bearer {reply['conversation_token']}"
                print(f"   (to come back: kefu chat --sender {sender} "
                      f"--token {reply['conversation_token']})")
            for message in reply["messages"]:
                _print_message(message)
                last_id = message["id"] or last_id
            if reply.get("retry_after") is not None:
                print(f"   (not kept: send it again in {reply['retry_after']} s)")
            if reply["mode"] == "handoff":
                print("   (a person owns this chat; press Enter to fetch their replies)")


def _show_new(client: httpx.Client, sender: str, last_id: str | None) -> str | None:
    params = {"after": last_id} if last_id else {}
    response = client.get(f"/api/v1/conversations/{sender}/messages", params=params)
    if response.status_code >= 400:
        print(f"error {response.status_code}: {response.json().get('detail')}", file=sys.stderr)
        return last_id
    for message in response.json()["messages"]:
        _print_message(message)
        last_id = message["id"]
    return last_id


def _print_message(message: dict[str, Any]) -> None:
    print(f"kefu> {message['text']}")
    for i, button in enumerate(message.get("buttons") or [], 1):
        print(f"      [{i}] {button['title']}  (type: {button['payload']})")
