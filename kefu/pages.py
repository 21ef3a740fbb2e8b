"""Serving kefu's browser pages (agent console, knowledge admin, supervisor pages) with the UI kit.

A page is a directory holding ``index.html`` and its own script and stylesheet; every page loads
the kit (``kefu/ui``: ``kit.js`` with ``el()``, ``api()``, login and session handling and toasts,
``kit.css`` with the shared base) from its own path, before its own files. :func:`add_page` writes
the routes once for every page:

- ``{path}`` redirects to ``{path}/``;
- ``{path}/`` answers ``index.html`` with the shared login form where it says
  ``<!-- kefu:login -->`` (one markup, the page's title in it);
- ``{path}/{name}`` answers one of the page's files or the kit's; anything else is a
  :class:`~kefu.errors.PageNotFound`.

Files are read on every request (``Cache-Control: no-cache``), so an edited page shows on reload.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from kefu.errors import PageNotFound

KIT_DIR = Path(__file__).parent / "ui"
KIT_FILES = ("kit.js", "kit.css")
LOGIN_MARK = "<!-- kefu:login -->"
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css"}
NO_CACHE = {"Cache-Control": "no-cache"}


def add_page(router: APIRouter, path: str, directory: Path, *, title: str,
             subtitle: str) -> None:
    """Serve the page in ``directory`` at ``path`` (e.g. ``/console``), kit and login included."""
    files = {name: KIT_DIR / name for name in KIT_FILES}
    files.update({p.name: p for p in directory.iterdir() if p.suffix in MEDIA_TYPES})

    @router.get(path, include_in_schema=False)
    async def page_root() -> RedirectResponse:
        return RedirectResponse(f"{path}/")

    @router.get(f"{path}/", include_in_schema=False)
    async def page_index() -> HTMLResponse:
        return HTMLResponse(render_index(directory, title=title, subtitle=subtitle),
                            headers=NO_CACHE)

    @router.get(f"{path}/{{name}}", include_in_schema=False)
    async def page_file(name: str) -> FileResponse:
        found = files.get(name)
        if found is None:
            raise PageNotFound(f"no file {name!r} on the page {path}/", name=name)
        return FileResponse(found, media_type=MEDIA_TYPES[found.suffix], headers=NO_CACHE)


def render_index(directory: Path, *, title: str, subtitle: str) -> str:
    """The page's ``index.html`` with the shared login form in place of its mark."""
    login = (KIT_DIR / "login.html").read_text(encoding="utf-8").rstrip()
    login = login.replace("{title}", html.escape(title))
    login = login.replace("{subtitle}", html.escape(subtitle))
    return (directory / "index.html").read_text(encoding="utf-8").replace(LOGIN_MARK, login)
