"""One page-serving helper: every kefu page gets the kit, the login form and its own files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from kefu.http import install_error_handlers
from kefu.pages import LOGIN_MARK, add_page

PAGES = Path(__file__).resolve().parents[2]
CONSOLE, ADMIN = PAGES / "handoff" / "console", PAGES / "knowledge" / "curation" / "admin_ui"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    (tmp_path / "index.html").write_text(f"<body>{LOGIN_MARK}<main>page</main></body>")
    (tmp_path / "page.js").write_text("kefu.mount({});")
    (tmp_path / "notes.txt").write_text("not served")
    router = APIRouter()
    add_page(router, "/demo", tmp_path, title="演示 <b>", subtitle="Demo")
    app = FastAPI()
    app.include_router(router)
    install_error_handlers(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kefu.test") as http:
        yield http


async def test_a_page_gets_the_login_form_the_kit_and_its_own_files(
        client: httpx.AsyncClient) -> None:
    assert (await client.get("/demo")).status_code in (307, 308)
    index = await client.get("/demo/")
    assert index.headers["content-type"].startswith("text/html")
    assert 'data-testid="login-form"' in index.text and LOGIN_MARK not in index.text
    assert "演示 &lt;b&gt; <small>Demo</small>" in index.text  # the title is text, never markup
    for name, kind in (("kit.js", "text/javascript"), ("kit.css", "text/css"),
                       ("page.js", "text/javascript")):
        served = await client.get(f"/demo/{name}")
        assert served.status_code == 200 and served.headers["content-type"].startswith(kind)
        assert served.headers["cache-control"] == "no-cache"
    for name in ("notes.txt", "index.htm"):
        missing = await client.get(f"/demo/{name}")
        assert missing.status_code == 404 and missing.json()["code"] == "page_not_found"
    assert (await client.get("/demo/..%2fsecret.py")).status_code == 404


def test_every_page_is_built_on_the_kit() -> None:
    for page in (CONSOLE, ADMIN):
        index = (page / "index.html").read_text(encoding="utf-8")
        assert LOGIN_MARK in index and 'id="login-form"' not in index, page
        assert index.index("kit.css") < index.index(".css\">", index.index("kit.css") + 8), page
        assert index.index("kit.js") < index.rindex(".js\""), page
        script = next(p for p in page.glob("*.js")).read_text(encoding="utf-8")
        assert "kefu.mount(" in script and "function el(" not in script, page
