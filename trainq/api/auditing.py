"""The audit trail of the API: one entry per state-changing request (POST, PUT, PATCH,
DELETE), whatever its answer, recorded once the answer has been sent.

Who asked comes from the principal the auth dependency left in the request's state
(``"anonymous"`` when the request was not authenticated); what was done from the
route that matched; the target from its path parameter, or for a new job from the
``Location`` it answered. Entries are handed to a writer thread after the answer
(:mod:`trainq.audit.writer`), and a failure to record is logged, never raised: the
answer is never delayed or changed by it. No header and no token text ever goes into an entry.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trainq import connections
from trainq.api.limits import bearer
from trainq.audit.trail import AuditEntry
from trainq.audit.writer import AuditWriter
from trainq.config import Settings
from trainq.users.model import Principal

logger = logging.getLogger("trainq.api")

AUDITED_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Routes with a name of their own in the trail; any other: "<METHOD> <path template>".
ACTIONS: dict[tuple[str, str], str] = {
    ("POST", "/train"): "submit",
    ("DELETE", "/train/{job_id}"): "cancel",
    ("PATCH", "/train/{job_id}"): "priority",
    ("POST", "/users"): "users.add",
    ("POST", "/users/{name}/tokens"): "users.token",
    ("PATCH", "/users/{name}"): "users.update",
    ("PATCH", "/users/{name}/quota"): "users.quota",
    ("DELETE", "/tokens/{token_id}"): "tokens.revoke",
    # The web page's login and logout: the actor is who logged in or out ("anonymous":
    # a login refused); never the token, the cookie nor the form.
    ("POST", "/ui/login"): "ui.login",
    ("POST", "/ui/logout"): "ui.logout",
}
# Actions whose answer's Location is a page to show, not what they acted on.
NO_TARGET = frozenset({"ui.login", "ui.logout"})
# The path parameters that name what a request acts on, looked for in this order
# (a route with none of them: its first parameter).
TARGET_PARAMS = ("job_id", "name", "token_id")
ANONYMOUS = "anonymous"
# An unmatched path is recorded as sent, cut to this (anyone may send any path).
MAX_PATH_CHARS = 200
# An error answer's {"detail": "..."} is kept when it is a short JSON body.
MAX_ERROR_BODY_BYTES = 4096
MAX_DETAIL_CHARS = 300


class AuditMiddleware:
    """ASGI middleware: records an :class:`AuditEntry` for each state-changing request."""

    def __init__(self, app: ASGIApp, settings: Settings, writer: AuditWriter | None = None) -> None:
        self.app = app
        self.settings = settings
        self.writer = writer or AuditWriter(lambda: connections.audit_trail(settings))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in AUDITED_METHODS:
            await self.app(scope, receive, send)
            return
        answer = _Answer()

        async def watched(message: Message) -> None:
            answer.see(message)
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            # The server's error middleware answers 500 once this is raised on.
            await self._record(scope, answer, failed=True)
            raise
        await self._record(scope, answer, failed=False)

    async def _record(self, scope: Scope, answer: _Answer, failed: bool) -> None:
        try:
            entry = entry_for(scope, answer.status or (500 if failed else 0), answer)
            self.writer.put(entry)
        except Exception as exc:  # an audit failure never fails the request
            logger.error(
                "could not record the audit entry of %s %s: %s: %s",
                scope["method"],
                scope["path"][:MAX_PATH_CHARS],
                type(exc).__name__,
                exc,
            )


class _Answer:
    """What the app answered: its status, Location, and an error's short body."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.location: str | None = None
        self.error_body = bytearray()
        self._keep_body = False

    def see(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            headers = dict(message.get("headers", []))
            location = headers.get(b"location")
            self.location = location.decode("latin-1") if location is not None else None
            json_body = headers.get(b"content-type", b"").startswith(b"application/json")
            self._keep_body = self.status >= 400 and json_body
        elif message["type"] == "http.response.body" and self._keep_body:
            self.error_body += message.get("body", b"")
            if len(self.error_body) > MAX_ERROR_BODY_BYTES:
                self._keep_body = False
                self.error_body.clear()

    def detail(self) -> str | None:
        """An error answer's one-sentence ``detail``, when it sent one."""
        if not self.error_body:
            return None
        try:
            detail = json.loads(self.error_body).get("detail")
        except (ValueError, AttributeError):
            return None
        return detail[:MAX_DETAIL_CHARS] if isinstance(detail, str) else None


def entry_for(scope: Scope, status: int, answer: _Answer) -> AuditEntry:
    """The request's entry, from its scope once the app has run."""
    principal = scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal):
        principal = None
    method: str = scope["method"]
    template = _template(scope)
    action = ACTIONS.get((method, template), f"{method} {template}")
    params: dict[str, Any] = scope.get("path_params") or {}
    named = [params[p] for p in TARGET_PARAMS if p in params] or list(params.values())
    target = str(named[0]) if named else None
    if target is None and answer.location and action not in NO_TARGET:
        # A new job (or user) is named by the Location it was answered with.
        target = answer.location.split("?")[0].rstrip("/").rsplit("/", 1)[-1] or None
    detail = answer.detail()
    token = bearer(scope)
    if detail is not None and token and token in detail:
        detail = None  # an answer that echoed the token: never written down
    client = scope.get("client")
    return AuditEntry(
        actor=principal.name if principal else ANONYMOUS,
        token_id=principal.token_id if principal else None,
        action=action,
        target=target,
        address=client[0] if client else None,
        answer=status,
        detail=detail,
    )


def _template(scope: Scope) -> str:
    """The matched route's path template (e.g. ``/train/{job_id}``), else the raw path."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if isinstance(template, str) and template:
        return template
    path: str = scope["path"]
    return path[:MAX_PATH_CHARS]
