"""schemathesis over every public and staff route: nothing answers a 5xx.

The whole app (``create_app``) on a real Redis with the demo store and the embedding model,
served by uvicorn; Rasa is not running, so shopper messages take the gateway's own path (the
knowledge answer or a ticket). Each operation gets a bounded, deterministic set of generated
requests: shopper routes anonymously (a new sender may start a conversation), every other route
as a logged-in manager. Left out: the agent and quality event streams (they never end) and logout (it would end
the manager's session for the rest of the run).

It found, and these now answer 4xx: bad ``after=`` cursors (``abc``, ``-``, ``1-``, ids past
2**64), lone UTF-16 surrogates in JSON text, and bodies of any size.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import BaseSchema, GenerationMode

from bot.app import create_app
from bot.gateway.settings import BotSettings
from handoff.service import HandoffService
from handoff.settings import HandoffSettings
from kefu.accounts import AgentRole
from kefu.conversation import ConversationStore
from kefu.redis import async_client
from tests.helpers.e5_model import e5_model_dir
from tests.helpers.live_server import ThreadServer

pytestmark = [pytest.mark.redis, pytest.mark.model, pytest.mark.slow]

EXAMPLES_PER_OPERATION = 12
STARTUP_SECONDS = 300.0  # the app indexes the demo store with the real model first (busy machine)
SKIPPED = {("GET", "/api/v1/agent/events"), ("GET", "/api/v1/quality/events"),  # streams
           ("POST", "/api/v1/agent/logout")}
SHOPPER_PREFIXES = ("/api/v1/messages", "/api/v1/conversations/", "/healthz", "/readyz")
MANAGER, PASSWORD = "fuzz-manager", "fuzz-密码-password"


async def _manager_token(redis_url: str) -> str:
    redis = async_client(redis_url)
    try:
        agents = HandoffService(redis, ConversationStore(redis),
                                HandoffSettings(bcrypt_rounds=4)).agents
        await agents.add(MANAGER, PASSWORD, ["presale"], role=AgentRole.MANAGER)
        token, _ = await agents.login(MANAGER, PASSWORD)
        return token
    finally:
        await redis.aclose()


@pytest.fixture(scope="module")
def served(redis_port: int, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[tuple[str, str]]:
    """(base URL, a manager's token) of the app on a flushed Redis."""
    import redis as sync_redis

    redis_url = f"redis://127.0.0.1:{redis_port}/2"
    sync_redis.Redis.from_url(redis_url).flushdb()
    monkey = pytest.MonkeyPatch()
    monkey.setenv("KEFU_EMBEDDING_MODEL", str(e5_model_dir(tmp_path_factory)))
    monkey.setenv("KEFU_REDIS_URL", redis_url)
    monkey.setenv("KEFU_SECOND_ENCODER", "false")  # the routes are what is tested, not the answers
    app = create_app(BotSettings(redis_url=redis_url, rasa_url="http://127.0.0.1:9",
                                 rasa_token="fuzz-rasa-token", action_secret="fuzz-secret",
                                 address_rate_per_minute=0))
    server = ThreadServer(app)
    server.start(timeout=STARTUP_SECONDS)
    try:
        yield server.url, asyncio.run(_manager_token(redis_url))
    finally:
        server.close()
        monkey.undo()


@pytest.fixture(scope="module")
def api_schema(served: tuple[str, str]) -> BaseSchema:
    return schemathesis.openapi.from_url(f"{served[0]}/openapi.json")


def _no_server_error(operation: Any, url: str, headers: dict[str, str]) -> Callable[[], None]:
    """A hypothesis test of one operation: valid and invalid requests, none answered 5xx."""
    strategy = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                         operation.as_strategy(GenerationMode.NEGATIVE))

    @settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, deadline=None,
              phases=[Phase.explicit, Phase.generate], database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def no_server_error(case: schemathesis.Case) -> None:
        response = case.call(base_url=url, headers=headers, timeout=60)
        if operation.path == "/readyz" and response.status_code == 503:  # its answer: not ready
            assert response.json()["ready"] is False  # (here Rasa and the sweeper are not running)
            return
        assert response.status_code < 500, (
            f"{response.status_code} {response.text[:300]}\n{case.as_curl_command()}")

    return no_server_error


def test_no_route_answers_a_server_error(api_schema: BaseSchema,
                                         served: tuple[str, str]) -> None:
    """Every operation, with requests valid and invalid by the schema (schemathesis' own
    pytest plugin does not run under pytest 9, so each operation runs its own hypothesis test)."""
    url, token = served
    failures: list[str] = []
    tried = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        staff = not operation.path.startswith(SHOPPER_PREFIXES)
        headers = {"Authorization": f"Bearer {token}"} if staff else {}
        check = _no_server_error(operation, url, headers)
        tried += 1
        try:
            check()
        except Exception as failure:  # every operation is tried, all are reported
            failures.append(f"{operation.method.upper()} {operation.path}: {failure}")
    assert tried >= 40, tried  # every public and staff route of the app
    assert failures == [], "\n\n".join(failures)


def test_the_schema_covers_public_and_staff_routes(api_schema: BaseSchema) -> None:
    paths = {result.ok().path for result in api_schema.get_all_operations()}
    assert "/api/v1/messages" in paths and "/api/v1/tickets" in paths
    assert "/api/v1/kb/drafts" in paths and "/api/v1/knowledge/decide" in paths
    assert not any(p.startswith("/internal") for p in paths)
