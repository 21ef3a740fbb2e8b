r"""``kefu agent add|list|passwd|disable|enable|remove``: manage console agents from the shell.

Passwords come from a hidden prompt on a terminal (asked twice), or from standard input otherwise
(``echo "$PW" | kefu agent add li --groups presale``; a second line, if given, must repeat the
first: ``printf '%s\n%s\n' "$PW" "$PW"``); never from the command line. A confirmation that does
not match is an error (exit 2), whichever way it came.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from functools import partial

from handoff.service import HandoffService
from handoff.settings import get_settings
from kefu.accounts import Agent, AgentRole
from kefu.conversation import ConversationStore
from kefu.errors import KefuError
from kefu.redis import async_client


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``agent`` command and its sub-commands to the ``kefu`` parser."""
    agent = subparsers.add_parser("agent", help="manage agent-console accounts")
    agent.add_argument("--redis-url", default=None, help="default: KEFU_REDIS_URL")
    commands = agent.add_subparsers(dest="agent_command", required=True)

    add = commands.add_parser("add", help="create an agent (password from prompt or stdin)")
    add.add_argument("username")
    add.add_argument("--groups", required=True, help="comma-separated: presale,aftersale,logistics")
    add.add_argument("--role", choices=[r.value for r in AgentRole], default=AgentRole.AGENT.value)
    add.add_argument("--display-name", default=None, help="name shown to shoppers")
    add.set_defaults(func=_add)

    listing = commands.add_parser("list", help="list agents with groups and presence")
    listing.set_defaults(func=_list)

    passwd = commands.add_parser("passwd", help="set a new password (prompt or stdin)")
    passwd.add_argument("username")
    passwd.set_defaults(func=_passwd)

    for name, text in (("disable", "stop an account from logging in (its sessions end)"),
                       ("enable", "let a disabled account log in again"),
                       ("remove", "delete an account for good")):
        command = commands.add_parser(name, help=text)
        command.add_argument("username")
        command.set_defaults(func=partial(_run, action=name))


class PasswordMismatch(KefuError):
    """The password and its confirmation differ."""

    status_code = 422
    code = "password_mismatch"


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        again = getpass.getpass("again: ")
    else:
        first = sys.stdin.readline().rstrip("\r\n")
        line = sys.stdin.readline()
        again = line.rstrip("\r\n") if line else first  # one line: nothing to confirm
    if again != first:
        raise PasswordMismatch("passwords differ: the confirmation does not match")
    return first


def _run(args: argparse.Namespace, action: str) -> int:
    async def go() -> int:
        redis = async_client(args.redis_url or get_settings().redis_url)
        try:
            return await _act(HandoffService(redis, ConversationStore(redis)), args, action)
        except KefuError as exc:  # account errors (exists, bad groups) and handoff ones
            print(f"error: {exc.message}", file=sys.stderr)
            return 2
        finally:
            await redis.aclose()

    return asyncio.run(go())


async def _act(service: HandoffService, args: argparse.Namespace, action: str) -> int:
    if action == "add":
        agent = await service.agents.add(
            args.username, _read_password(), args.groups.split(","), role=AgentRole(args.role),
            display_name=args.display_name)
        print(f"added {_line(agent)}")
    elif action == "passwd":
        await service.agents.set_password(args.username, _read_password())
        print(f"password of {args.username} changed")
    elif action in ("disable", "enable"):
        agent = await service.agents.set_disabled(args.username, action == "disable")
        print(f"{action}d {_line(agent)}")
    elif action == "remove":
        await service.agents.remove(args.username)
        print(f"removed {args.username}")
    else:
        for agent in await service.agents.all():
            print(_line(agent))
    return 0


def _line(agent: Agent) -> str:
    line = (f"{agent.username}\t{agent.display_name}\t{','.join(agent.groups)}\t"
            f"{agent.role.value}\t{agent.presence.value}")
    return f"{line}\tdisabled" if agent.disabled else line


def _add(args: argparse.Namespace) -> int:
    return _run(args, "add")


def _list(args: argparse.Namespace) -> int:
    return _run(args, "list")


def _passwd(args: argparse.Namespace) -> int:
    return _run(args, "passwd")
