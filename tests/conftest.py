"""Fixtures shared by every test package.

Redis tests get a real ``redis-server`` started once per session on a free port (AOF on), and a
database flushed before each test that asks for ``redis_url``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.helpers.processes import redis_server


@pytest.fixture(scope="session")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with redis_server(tmp_path_factory.mktemp("redis")) as (port, _proc):
        yield port


@pytest.fixture
def redis_url(redis_port: int) -> Iterator[str]:
    url = f"redis://127.0.0.1:{redis_port}/0"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    yield url


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
