"""``GET /audit``: the audit trail, newest first, for admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from trainq import connections
from trainq.api.auth import Caller
from trainq.api.models import UNAUTHORIZED, Problem
from trainq.audit.trail import AuditEntry
from trainq.config import Settings
from trainq.users.access import Action, decide

# A Redis stream entry id: what next_cursor holds.
STREAM_ID_PATTERN = r"^[0-9]{1,20}-[0-9]{1,20}$"


class AuditEntryView(BaseModel):
    """One state-changing call: who, what, on which target, from where, and the answer."""

    id: str = Field(description="The entry's id in the trail (a Redis stream id)")
    ts: float = Field(description="When, in seconds since the epoch (UTC)")
    actor: str = Field(description="The user who called ('anonymous' without a valid token)")
    token_id: str | None = Field(description="Which of the actor's tokens (never the secret)")
    action: str = Field(examples=["submit", "cancel", "users.add", "tokens.revoke"])
    target: str | None = Field(description="The job id, user name or token id acted on")
    address: str | None = Field(description="The caller's address ('local': a direct command)")
    answer: int = Field(description="The HTTP status answered")
    detail: str | None = Field(description="Why it was refused, or what changed")


class AuditList(BaseModel):
    entries: list[AuditEntryView] = Field(description="Newest first")
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next (older) page; null on the last page"
    )


def router(settings: Settings) -> APIRouter:
    api = APIRouter(tags=["audit"])

    @api.get(
        "/audit",
        response_model=AuditList,
        responses={
            **UNAUTHORIZED,
            403: {"model": Problem, "description": "The caller is not an admin"},
            429: {"model": Problem, "description": "Over the token's request rate"},
            503: {"model": Problem, "description": "Redis does not answer"},
        },
        summary="The audit trail, newest first (admins only)",
    )
    def audit(
        principal: Caller,
        limit: Annotated[int, Query(ge=1, le=500, description="Entries per page")] = 50,
        cursor: Annotated[
            str | None,
            Query(pattern=STREAM_ID_PATTERN, description="next_cursor of the page before"),
        ] = None,
    ) -> AuditList:
        """Every state-changing call (submit, cancel, users, tokens) with its answer."""
        if decide(principal, Action.AUDIT) != "allowed":
            raise HTTPException(
                403, f"only an admin may read the audit trail: {principal.name} is not one"
            )
        try:
            page = connections.audit_trail(settings).page(limit=limit, cursor=cursor)
        except ValueError as exc:
            problem = {"loc": ["query", "cursor"], "msg": str(exc), "type": "value_error"}
            raise HTTPException(422, [problem]) from None
        return AuditList(entries=[_view(e) for e in page.entries], next_cursor=page.next_cursor)

    return api


def _view(entry: AuditEntry) -> AuditEntryView:
    return AuditEntryView(
        id=entry.id or "",
        ts=entry.ts,
        actor=entry.actor,
        token_id=entry.token_id,
        action=entry.action,
        target=entry.target,
        address=entry.address,
        answer=entry.answer,
        detail=entry.detail,
    )
