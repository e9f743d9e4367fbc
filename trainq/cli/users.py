"""``trainq users``: add users, issue and revoke their API tokens, disable and enable them,
and set an owner's scheduling quota (``trainq users quota``).

On a host that reaches Redis they talk to it directly, and each change (or refusal)
is one audit entry, actor ``TRAINQ_USER``, address "local". With a remote API (as for
job commands: TRAINQ_API_URL, or ``trainq login``), they go through its admin routes
with the caller's token, and the API audits them. A new token is printed alone on
stdout, once; it is never stored, logged or audited. Exit codes: 1 no such user or
token, the name is taken, or the caller is no admin; 2 an invalid name; 3 Redis or
the API does not answer.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from trainq import connections
from trainq.audit.trail import AuditEntry
from trainq.cli.app import PriorityLevel, cli, err, fail, out
from trainq.cli.render import clock
from trainq.client import scheduling
from trainq.config import get_settings
from trainq.config.login import remote_api
from trainq.errors import ConfigError, UserExists, UserNotFound
from trainq.scheduler.policy import OwnerPolicy
from trainq.users.model import IssuedToken, TokenInfo
from trainq.users.protocols import UserStore, check_name
from trainq.users.tokens import is_token_id

if TYPE_CHECKING:
    from trainq.remote.scheduling import OwnerQuota
    from trainq.remote.users import RemoteUsers

users_cli = typer.Typer(
    name="users",
    help="Users, their API tokens and quotas (talks to Redis: run it where Redis answers).",
    no_args_is_help=True,
)
cli.add_typer(users_cli, name="users")

UserName = Annotated[str, typer.Argument(help="The user's name")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON")]


@users_cli.command("add")
def add(
    name: UserName,
    admin: Annotated[bool, typer.Option("--admin", help="May manage users and see all")] = False,
) -> None:
    """Add a user; print their first token (shown only now) alone on stdout."""
    try:
        user, issued = _store().add(name, admin=admin)
    except UserExists as exc:
        raise _refused("users.add", name, exc, code=1, answer=409) from None
    except ValueError as exc:
        raise _refused("users.add", name, exc, code=2, answer=422) from None
    role = "admin" if user.admin else "user"
    _audit("users.add", 200, name, detail=f"added ({role})", token_id=issued.info.id)
    _show(issued, f"user {name} added ({role}); token id {issued.info.id}.")


@users_cli.command("token")
def token(name: UserName) -> None:
    """Issue another token for a user; print it (shown only now) alone on stdout."""
    try:
        issued = _store().issue(name)
    except UserNotFound as exc:
        raise _refused("users.token", name, exc, code=1, answer=404) from None
    _audit("users.token", 200, name, detail="token issued", token_id=issued.info.id)
    _show(issued, f"token id {issued.info.id} issued to {name}.")


@users_cli.command("revoke")
def revoke(token_id: Annotated[str, typer.Argument(help="The token's id")]) -> None:
    """Revoke a token: it is refused from now on."""
    # Never echo a whole token pasted where its id belongs.
    target = token_id if is_token_id(token_id) else "(not a token id)"
    try:
        info = _store().revoke(token_id)
    except UserNotFound as exc:
        raise _refused("tokens.revoke", target, exc, code=1, answer=404) from None
    _audit("tokens.revoke", 200, info.id, detail=f"token of {info.user} revoked")
    out.print(f"token {info.id} of {info.user} revoked", markup=False, highlight=False)


@users_cli.command("disable")
def disable(name: UserName) -> None:
    """Disable a user: every token of theirs is refused until enabled again."""
    _set_disabled(name, True)


@users_cli.command("enable")
def enable(name: UserName) -> None:
    """Enable a disabled user: their live tokens work again."""
    _set_disabled(name, False)


@users_cli.command("list")
def list_(as_json: AsJson = False) -> None:
    """Users by name: role, state, how many live tokens, when added."""
    store = _store()
    users = store.list()
    live: dict[str, int] = {}
    for info in store.tokens():
        live[info.user] = live.get(info.user, 0) + (not info.revoked)
    if as_json:
        rows = [{**u.model_dump(mode="json"), "live_tokens": live.get(u.name, 0)} for u in users]
        out.print_json(json.dumps({"users": rows}))
        return
    table = _table("name", "role", "state", "live tokens", "created")
    for user in users:
        table.add_row(
            escape(user.name),
            "admin" if user.admin else "user",
            "disabled" if user.disabled else "enabled",
            str(live.get(user.name, 0)),
            clock(user.created_at),
        )
    out.print(table)


@users_cli.command("tokens")
def tokens(
    name: Annotated[str | None, typer.Argument(help="Only this user's tokens")] = None,
    as_json: AsJson = False,
) -> None:
    """Tokens, oldest first: id, user, created, last used, revoked (never a secret)."""
    try:
        infos = _store().tokens(name)
    except UserNotFound as exc:
        raise fail(escape(str(exc)), 1) from None
    if as_json:
        out.print_json(json.dumps({"tokens": [t.model_dump(mode="json") for t in infos]}))
        return
    table = _table("id", "user", "created", "last used", "revoked")
    for info in infos:
        table.add_row(*_token_row(info))
    out.print(table)


@users_cli.command("quota")
def quota(
    name: Annotated[str, typer.Argument(help="The owner: a user, or a direct client's name")],
    gpus: Annotated[int | None, typer.Option(min=0, help="Most GPUs running at once")] = None,
    jobs: Annotated[int | None, typer.Option(min=0, help="Most jobs running at once")] = None,
    queued: Annotated[int | None, typer.Option(min=0, help="Most jobs queued at once")] = None,
    max_priority: Annotated[
        PriorityLevel | None, typer.Option(help="The highest priority they may ask for")
    ] = None,
    weight: Annotated[
        float | None, typer.Option(help="Fair-share weight (default 1; 2: twice the share)")
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Back to the defaults (then apply the options)")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Show an owner's quotas, highest priority and fair-share weight; the options
    change what they name and keep the rest."""
    values = {"gpus": gpus, "jobs": jobs, "queued": queued, "weight": weight,
              "max_priority": max_priority.value if max_priority else None}  # fmt: skip
    given = {key: value for key, value in values.items() if value is not None}
    changing = bool(given) or clear
    try:
        check_name(name)
        OwnerPolicy.model_validate(given)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise _refused("users.quota", name, ValueError(problems), code=2, answer=422) from None
    except ValueError as exc:
        raise _refused("users.quota", name, exc, code=2, answer=422) from None
    # Lazy: httpx, for a remote API only; `trainq worker` imports this module too.
    from trainq.remote.http import ApiClient
    from trainq.remote.scheduling import OwnerQuota
    from trainq.remote.users import RemoteUsers

    settings = get_settings()
    try:
        remote = remote_api(settings)
    except ConfigError as exc:
        raise fail(escape(str(exc)), 2) from None
    changes: dict[str, object] = (dict.fromkeys(OwnerPolicy.model_fields) if clear else {}) | given
    if remote is not None:
        with ApiClient(*remote, settings.api_timeout_s) as api:
            users = RemoteUsers(api)
            found = users.change_quota(name, changes) if changing else users.quota(name)
    else:
        policy = scheduling.get_policy(name, settings)
        if changing:
            policy = scheduling.change_policy(name, changes, settings)
            _audit("users.quota", 200, name, detail=f"quota {policy.model_dump_json()}")
        found = OwnerQuota(
            owner=name,
            **policy.model_dump(),
            default_max_priority=settings.default_max_priority,
            default_queued=settings.max_queued_per_user or None,
        )
    _show_quota(found, as_json)


def _show_quota(found: OwnerQuota, as_json: bool) -> None:
    if as_json:
        out.print_json(found.model_dump_json())
        return
    queued = f"default: {found.default_queued or 'no limit'}"
    rows = [
        ("owner", found.owner),
        ("gpus", "no limit" if found.gpus is None else str(found.gpus)),
        ("jobs", "no limit" if found.jobs is None else str(found.jobs)),
        ("queued", queued if found.queued is None else str(found.queued)),
        ("max priority", found.max_priority or f"default: {found.default_max_priority}"),
        ("weight", f"{found.weight:g}"),
    ]
    grid = Table.grid(padding=(0, 2))
    for label, value in rows:
        grid.add_row(label, escape(value))
    out.print(grid)


def _set_disabled(name: str, disabled: bool) -> None:
    action = "users.disable" if disabled else "users.enable"
    store = _store()
    try:
        user = store.disable(name) if disabled else store.enable(name)
    except UserNotFound as exc:
        raise _refused(action, name, exc, code=1, answer=404) from None
    state = "disabled" if user.disabled else "enabled"
    _audit(action, 200, name, detail=state)
    out.print(f"user {name} {state}", markup=False, highlight=False)


def _store() -> UserStore | RemoteUsers:
    """Redis's users, or the remote API's (its token must be an admin's)."""
    # Lazy: httpx, for a remote API only; `trainq worker` imports this module too.
    from trainq.remote.http import ApiClient
    from trainq.remote.users import RemoteUsers

    settings = get_settings()
    try:
        remote = remote_api(settings)
        if remote is None:
            return connections.users(settings)
        return RemoteUsers(ApiClient(*remote, settings.api_timeout_s))
    except ConfigError as exc:
        raise fail(escape(str(exc)), 2) from None


def _show(issued: IssuedToken, what: str) -> None:
    """The token alone on stdout (``TOKEN=$(trainq users add bob)``); how to use it on
    stderr."""
    settings = get_settings()
    remote = remote_api(settings)
    api_url = (remote[0] if remote else settings.api_url) or "<API URL>"
    user = issued.info.user
    err.print(
        f"{what} The token is shown only now: give it to {user}, who runs: "
        f"trainq login {api_url} --token <token>",
        markup=False,
        highlight=False,
    )
    out.print(issued.secret, markup=False, highlight=False, soft_wrap=True)


def _refused(action: str, target: str, exc: Exception, code: int, answer: int) -> typer.Exit:
    _audit(action, answer, target, detail=str(exc))
    return fail(escape(str(exc)), code)


def _audit(action: str, answer: int, target: str, detail: str, token_id: str | None = None) -> None:
    if remote_api(get_settings()) is not None:
        return  # the API recorded it, with who asked and from where
    entry = AuditEntry(
        actor=get_settings().user,
        action=action,
        answer=answer,
        target=target,
        address="local",
        detail=detail,
        token_id=token_id,
    )
    connections.audit_trail().record(entry)


def _table(*columns: str) -> Table:
    table = Table(box=None, padding=(0, 1), pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, no_wrap=True)
    return table


def _token_row(info: TokenInfo) -> tuple[str, str, str, str, str]:
    last_used = clock(info.last_used_at) if info.last_used_at is not None else "never"
    revoked = "revoked" if info.revoked else ""
    return info.id, escape(info.user), clock(info.created_at), last_used, revoked
