"""``/ui``: the web page's HTML shells and its static files (scripts, styles, uPlot).

The pages are static HTML; their scripts read the JSON API with the session cookie
(:mod:`trainq.api.auth` accepts it, with ``X-CSRF-Token`` on unsafe methods). This
router only decides who sees a page: every page but the login form needs a session,
else ``303`` to ``/ui/login?next=<path>``. It fills a page's few placeholders
(the user's name, the session's CSRF token for the logout form and the scripts, the
Flower port), each HTML-escaped. Every answer carries a strict Content-Security-Policy:
no inline script or style, nothing from another origin.

The session store comes from the caller (:func:`router`'s ``sessions``), by default
:func:`trainq.connections.sessions`: this layer does not import the API's.
"""

from __future__ import annotations

import hashlib
import html
import mimetypes
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Protocol
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from trainq import connections
from trainq.config import Settings

HERE = Path(__file__).parent
PAGES_DIR = HERE / "pages"
STATIC_DIR = HERE / "static"
# The cookie trainq.api.routes.session sets at login.
SESSION_COOKIE = "trainq_session"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
# Pages carry the user's CSRF token: never cached. Static files change with the package.
PAGE_CACHE = "no-store"
STATIC_CACHE = "no-cache"  # revalidated (ETag), so an upgrade is seen at once
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".LICENSE": "text/plain; charset=utf-8",
}

JobId = Annotated[str, PathParam(min_length=1, max_length=200)]


class Session(Protocol):
    """What a page needs of a login session (trainq.users.sessions.Session)."""

    @property
    def user(self) -> str: ...

    @property
    def admin(self) -> bool: ...

    @property
    def csrf(self) -> str: ...


class Sessions(Protocol):
    def get(self, cookie_value: str) -> Session | None:
        """The live session the cookie names, or None."""


def router(settings: Settings, sessions: Callable[[], Sessions] | None = None) -> APIRouter:
    """The page routes; ``sessions`` gives the session store (default: the settings')."""
    lookup: Callable[[], Sessions] = sessions or (lambda: connections.sessions(settings))
    static_files = _static_files()
    ui = APIRouter(prefix="/ui", include_in_schema=False)

    def page(request: Request, name: str) -> Response:
        """The page ``name`` for the request's session, or a redirect to the login form."""
        cookie = request.cookies.get(SESSION_COOKIE)
        session = lookup().get(cookie) if cookie else None
        if session is None:
            wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return _redirect(f"/ui/login?next={quote(wanted, safe='/')}")
        values = {
            "user": session.user,
            "role": "admin" if session.admin else "user",
            "csrf": session.csrf,
            "flower_port": str(settings.flower_port),
        }
        return _html(render(name, values))

    @ui.get("", response_class=RedirectResponse)
    def ui_root() -> Response:
        return _redirect("/ui/")

    @ui.get("/login", response_class=HTMLResponse)
    def login(
        error: Annotated[str | None, Query(max_length=10)] = None,
        next_: Annotated[str | None, Query(alias="next", max_length=2000)] = None,
    ) -> Response:
        message = "That token was not accepted: check it and try again." if error else ""
        return _html(render("login", {"error": message, "next": safe_next(next_)}))

    @ui.get("/", response_class=HTMLResponse)
    def jobs(request: Request) -> Response:
        return page(request, "jobs")

    @ui.get("/jobs/{job_id}", response_class=HTMLResponse)
    def job(request: Request, job_id: JobId) -> Response:
        return page(request, "job")

    @ui.get("/compare", response_class=HTMLResponse)
    def compare(request: Request) -> Response:
        return page(request, "compare")

    @ui.get("/cluster", response_class=HTMLResponse)
    def cluster(request: Request) -> Response:
        return page(request, "cluster")

    @ui.get("/static/{path:path}")
    def static(request: Request, path: str) -> Response:
        """The package's files only (a path not among them is a 404, never a lookup),
        from memory; ``304`` when the browser's copy is current (``If-None-Match``)."""
        found = static_files.get(path)
        if found is None:
            return Response("not found", status_code=404, headers=SECURITY_HEADERS)
        headers = {**SECURITY_HEADERS, "Cache-Control": STATIC_CACHE, "ETag": found.etag}
        if found.etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(found.body, media_type=found.media_type, headers=headers)

    return ui


def safe_next(value: str | None) -> str:
    """``value`` if it is a path of this site's page (``/ui...``), else ``/ui/``: a login
    never sends anyone to another site."""
    if not value:
        return "/ui/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith("/ui") or "\\" in value:
        return "/ui/"
    if value.startswith("//"):
        return "/ui/"
    return value


def render(name: str, values: dict[str, str]) -> str:
    """The page ``name`` with the shared header, each ``{{key}}`` replaced by its value,
    HTML-escaped (quotes too: values go into attributes)."""
    text = _template(name).replace("{{header}}", _template("_header"))
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", html.escape(value, quote=True))
    return text


@cache
def _template(name: str) -> str:
    return (PAGES_DIR / f"{name}.html").read_text(encoding="utf-8")


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    media_type: str
    etag: str


def _static_files() -> dict[str, StaticFile]:
    """Every file under static/ (about 100 KB), read once, by its path relative to it."""
    found = {}
    for path in sorted(STATIC_DIR.rglob("*")):
        if not path.is_file():
            continue
        body = path.read_bytes()
        kind = MEDIA_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        found[path.relative_to(STATIC_DIR).as_posix()] = StaticFile(
            body, kind or "application/octet-stream", etag
        )
    return found


def _html(text: str) -> HTMLResponse:
    return HTMLResponse(text, headers={**SECURITY_HEADERS, "Cache-Control": PAGE_CACHE})


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)
