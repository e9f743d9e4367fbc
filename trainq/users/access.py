"""Who may do what: the one authorization table, and the decision every route asks for.

Any user may submit and read; only a job's owner or an admin may cancel it, change its
priority or download its artifacts; only admins manage users and quotas and read the
audit trail. With ``jobs_visible="owner"`` a user sees only their own jobs: another
user's job is *hidden* (the API answers ``404``, as for an id that does not exist, so
ids do not leak), not *forbidden*.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from trainq.users.model import Principal


class Action(StrEnum):
    SUBMIT = "submit"
    LIST = "list"  # jobs, filtered to one's own when jobs are visible to owners only
    READ = "read"  # one job: its record, logs and artifact list
    CANCEL = "cancel"
    PRIORITY = "priority"  # change a pending job's priority (the scheduler's)
    DOWNLOAD = "download"  # an artifact's bytes
    CLUSTER = "cluster"  # /stats, /metrics
    MANAGE_USERS = "manage_users"  # users, tokens and quotas
    AUDIT = "audit"


class Rule(StrEnum):
    ANY_USER = "any user"
    OWNER_OR_ADMIN = "the job's owner or an admin"
    ADMIN = "an admin"


# The table: every action, who may take it.
RULES: dict[Action, Rule] = {
    Action.SUBMIT: Rule.ANY_USER,
    Action.LIST: Rule.ANY_USER,
    Action.READ: Rule.ANY_USER,
    Action.CANCEL: Rule.OWNER_OR_ADMIN,
    Action.PRIORITY: Rule.OWNER_OR_ADMIN,
    Action.DOWNLOAD: Rule.OWNER_OR_ADMIN,
    Action.CLUSTER: Rule.ANY_USER,
    Action.MANAGE_USERS: Rule.ADMIN,
    Action.AUDIT: Rule.ADMIN,
}

Decision = Literal["allowed", "forbidden", "hidden"]


def decide(
    principal: Principal,
    action: Action,
    owner: str | None = None,
    jobs_visible: Literal["all", "owner"] = "all",
) -> Decision:
    """May ``principal`` take ``action`` (on a job of ``owner``, for job actions)?

    "hidden" where the job is not the caller's to see at all (answer as if it did
    not exist); "forbidden" where they see it but may not do this.
    """
    if principal.admin:
        return "allowed"
    rule = RULES[action]
    if rule == Rule.ADMIN:
        return "forbidden"
    is_owner = owner is not None and owner == principal.name
    job_action = action in (Action.READ, Action.CANCEL, Action.PRIORITY, Action.DOWNLOAD)
    if job_action and jobs_visible == "owner" and not is_owner:
        return "hidden"
    if rule == Rule.OWNER_OR_ADMIN and not is_owner:
        return "forbidden"
    return "allowed"


def refusal(principal: Principal, action: Action, job_id: str, owner: str | None) -> str:
    """Why a forbidden job action was refused, naming who may take it."""
    whose = f"{owner}'s" if owner else "an ownerless"
    return (
        f"{principal.name} may not {action.value} job {job_id}: it is {whose} job, and only "
        f"{RULES[action].value} may {action.value} it"
    )
