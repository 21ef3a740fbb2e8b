"""Serving kefu's browser pages (agent console, knowledge admin, supervisor pages) with the UI kit.

A page is a directory holding ``page.html`` (the markup of its logged-in view) and its own
scripts and stylesheets. :func:`add_page` writes everything around it once, for every page:

- ``{path}`` redirects to ``{path}/``;
- ``{path}/`` answers the kit's frame (``kefu/ui/page.html``): the document head loading the kit
  (``kit.css``, ``kit.js`` with ``el()``, ``api()``, login and session handling, toasts) before
  the page's own files, the one login form with the page's title, then ``page.html``;
- ``{path}/{name}`` answers one of the page's scripts or stylesheets, or the kit's; anything else
  is a :class:`~kefu.errors.PageNotFound`.

Files are read on every request (``Cache-Control: no-cache``), so an edited page shows on reload.
Every page answers with a Content-Security-Policy (scripts, styles, connections only from kefu
itself; no framing: ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``, so a staff page
cannot be clickjacked inside another site) and ``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from kefu.errors import PageNotFound

KIT_DIR = Path(__file__).parent / "ui"
KIT_FILES = ("kit.js", "kit.css")
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css"}
NO_CACHE = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data: blob:; "
    # the admin's calendar positions its bars with style attributes
    "style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'")
PAGE_HEADERS = {**NO_CACHE, "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin"}


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
        document = render(directory, path, title=title, subtitle=subtitle)
        return HTMLResponse(document, headers=PAGE_HEADERS)

    @router.get(f"{path}/{{name}}", include_in_schema=False)
    async def page_file(name: str) -> FileResponse:
        found = files.get(name)
        if found is None:
            raise PageNotFound(f"no file {name!r} on the page {path}/", name=name)
        return FileResponse(found, media_type=MEDIA_TYPES[found.suffix], headers=NO_CACHE)


def render(directory: Path, path: str, *, title: str, subtitle: str) -> str:
    """The whole document of the page in ``directory``: the kit's frame around its markup."""
    own = sorted(p.name for p in directory.iterdir() if p.suffix in MEDIA_TYPES)
    styles = [f'  <link rel="stylesheet" href="{path}/{n}">' for n in own if n.endswith(".css")]
    scripts = [f'  <script src="{path}/{n}" defer></script>' for n in own if n.endswith(".js")]
    document = (KIT_DIR / "page.html").read_text(encoding="utf-8")
    for mark, value in (("{title}", html.escape(title)), ("{subtitle}", html.escape(subtitle)),
                        ("{path}", path), ("{styles}", "\n".join(styles)),
                        ("{scripts}", "\n".join(scripts))):
        document = document.replace(mark, value)
    body = (directory / "page.html").read_text(encoding="utf-8").rstrip()
    return document.replace("{body}", body)
