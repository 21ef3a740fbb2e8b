from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from handoff.service import HandoffService
from kefu.errors import NotAuthenticated

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def kefu(repo_root: Path, redis_url: str, *args: str,
         stdin: str = "") -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "kefu.cli", "agent", "--redis-url", redis_url, *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, cwd=repo_root,
                          timeout=60, check=False)


def test_agent_add_and_list(repo_root: Path, redis_url: str) -> None:
    added = kefu(repo_root, redis_url, "add", "li", "--groups", "presale,aftersale",
                 "--display-name", "小李", stdin="correct horse 电池\n")
    assert added.returncode == 0, added.stderr
    assert "li\t小李\tpresale,aftersale\tagent\toffline" in added.stdout
    manager = kefu(repo_root, redis_url, "add", "boss", "--groups", "logistics", "--role", "manager",
                   stdin="another-password\n")
    assert manager.returncode == 0, manager.stderr
    listed = kefu(repo_root, redis_url, "list")
    assert listed.stdout.splitlines() == ["boss\tboss\tlogistics\tmanager\toffline",
                                          "li\t小李\tpresale,aftersale\tagent\toffline"]
    again = kefu(repo_root, redis_url, "add", "li", "--groups", "presale", stdin="whatever-pw\n")
    assert again.returncode == 2 and "already exists" in again.stderr
    unknown = kefu(repo_root, redis_url, "add", "x", "--groups", "kitchen", stdin="whatever-pw\n")
    assert unknown.returncode == 2 and "groups" in unknown.stderr
    changed = kefu(repo_root, redis_url, "passwd", "li", stdin="a-new-password\n")
    assert changed.returncode == 0 and "changed" in changed.stdout


async def test_the_piped_password_logs_in(repo_root: Path, redis_url: str,
                                          service: HandoffService) -> None:
    assert kefu(repo_root, redis_url, "add", "wu", "--groups", "presale",
                stdin="piped-password-1\n").returncode == 0
    token, agent = await service.agents.login("wu", "piped-password-1")
    assert token and agent.groups == ["presale"]
    with pytest.raises(NotAuthenticated):
        await service.agents.login("wu", "piped-password-1\n")


async def test_disable_enable_and_remove(repo_root: Path, redis_url: str,
                                         service: HandoffService) -> None:
    assert kefu(repo_root, redis_url, "add", "zhao", "--groups", "presale",
                stdin="zhao-password\n").returncode == 0
    token, _agent = await service.agents.login("zhao", "zhao-password")

    disabled = kefu(repo_root, redis_url, "disable", "zhao")
    assert disabled.returncode == 0, disabled.stderr
    assert disabled.stdout.strip().endswith("\tdisabled")
    with pytest.raises(NotAuthenticated):
        await service.agents.authenticate(token)  # the open session ends
    with pytest.raises(NotAuthenticated):
        await service.agents.login("zhao", "zhao-password")
    assert kefu(repo_root, redis_url, "list").stdout.splitlines() == [
        "zhao\tzhao\tpresale\tagent\toffline\tdisabled"]

    assert kefu(repo_root, redis_url, "enable", "zhao").returncode == 0
    token, _agent = await service.agents.login("zhao", "zhao-password")

    removed = kefu(repo_root, redis_url, "remove", "zhao")
    assert removed.returncode == 0 and "removed zhao" in removed.stdout
    assert kefu(repo_root, redis_url, "list").stdout == ""
    with pytest.raises(NotAuthenticated):
        await service.agents.authenticate(token)
    missing = kefu(repo_root, redis_url, "remove", "zhao")
    assert missing.returncode == 2 and "no agent" in missing.stderr


def test_a_mismatched_confirmation_on_stdin_is_an_error(repo_root: Path, redis_url: str) -> None:
    differs = kefu(repo_root, redis_url, "add", "qian", "--groups", "presale",
                   stdin="first-password\nsecond-password\n")
    assert differs.returncode == 2 and "passwords differ" in differs.stderr
    assert kefu(repo_root, redis_url, "list").stdout == ""  # nothing was created
    same = kefu(repo_root, redis_url, "add", "qian", "--groups", "presale",
                stdin="first-password\nfirst-password\n")
    assert same.returncode == 0, same.stderr
    changed = kefu(repo_root, redis_url, "passwd", "qian", stdin="new-password-1\nnew-password-2\n")
    assert changed.returncode == 2 and "passwords differ" in changed.stderr
