"""One page-serving helper: every kefu page gets the kit, the login form and its own files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from kefu.http import install_error_handlers
from kefu.pages import add_page

REPO = Path(__file__).resolve().parents[2]
PAGES = (REPO / "handoff" / "console", REPO / "knowledge" / "curation" / "admin_ui",
         REPO / "quality" / "dashboard")


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    (tmp_path / "page.html").write_text('<section id="app-view" hidden>{title}</section>')
    (tmp_path / "demo.js").write_text("kefu.mount({});")
    (tmp_path / "demo.css").write_text("main { margin: 0; }")
    (tmp_path / "notes.txt").write_text("not served")
    router = APIRouter()
    add_page(router, "/demo", tmp_path, title="演示 <b>", subtitle="Demo")
    app = FastAPI()
    app.include_router(router)
    install_error_handlers(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kefu.test") as http:
        yield http


async def test_a_page_gets_the_kit_the_login_form_and_its_own_files(
        client: httpx.AsyncClient) -> None:
    assert (await client.get("/demo")).status_code in (307, 308)
    page = (await client.get("/demo/")).text
    assert "<title>演示 &lt;b&gt; · Demo</title>" in page  # the title is text, never markup
    assert 'data-testid="login-form"' in page and "演示 &lt;b&gt; <small>Demo</small>" in page
    order = [page.index(f'"/demo/{name}"') for name in ("kit.css", "demo.css", "kit.js", "demo.js")]
    assert order == sorted(order)  # the kit first, then the page's own files
    assert '<section id="app-view" hidden>{title}</section>' in page  # the page's markup as is
    for name, kind in (("kit.js", "text/javascript"), ("kit.css", "text/css"),
                       ("demo.js", "text/javascript")):
        served = await client.get(f"/demo/{name}")
        assert served.status_code == 200 and served.headers["content-type"].startswith(kind)
        assert served.headers["cache-control"] == "no-cache"
    for name in ("notes.txt", "page.html"):
        missing = await client.get(f"/demo/{name}")
        assert missing.status_code == 404 and missing.json()["code"] == "page_not_found"
    assert (await client.get("/demo/..%2fsecret.py")).status_code == 404


def test_the_pages_hold_only_their_own_part() -> None:
    for page in PAGES:
        markup = (page / "page.html").read_text(encoding="utf-8")
        assert "<head>" not in markup and 'id="login-form"' not in markup, page
        own = [p for p in page.glob("*.js") if p.name != "echarts.min.js"]  # set-up's bundle
        scripts = [p.read_text(encoding="utf-8") for p in own]
        assert sum("kefu.mount(" in s for s in scripts) == 1, page  # one script owns the page
        assert not any("function el(" in s for s in scripts), page


async def test_a_page_cannot_be_framed_and_runs_only_kefu_s_scripts(
        client: httpx.AsyncClient) -> None:
    page = await client.get("/demo/")
    policy = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert (await client.get("/demo/demo.js")).headers["X-Content-Type-Options"] == "nosniff"
