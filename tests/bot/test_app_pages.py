"""Every page ``make run`` announces is served by the app it starts (and /admin/ is not a page)."""

from __future__ import annotations

import re

import httpx
import pytest

from bot.app import create_app
from bot.gateway.settings import BotSettings
from kefu.stack import StackConfig, banner

pytestmark = pytest.mark.redis


async def test_the_banner_names_pages_that_exist(redis_url: str) -> None:
    config = StackConfig(gateway_port=8765)
    text = banner(config)
    urls = re.findall(rf"{re.escape(config.gateway_url)}(/\S*)", text)
    assert {"/static/demo.html", "/console/", "/admin/kb/", "/quality/", "/metrics",
            "/docs"} <= set(urls)
    app = create_app(BotSettings(redis_url=redis_url, load_knowledge=False))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://kefu.test") as http:
        for path in ("/static/demo.html", "/console/", "/admin/kb/", "/quality/", "/metrics",
                     "/docs"):
            assert (await http.get(path)).status_code == 200, path
        assert (await http.get("/admin/")).status_code == 404
