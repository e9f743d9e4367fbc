"""Redis addresses from settings: the sentinels' list, how to talk to them, and the
URL Celery takes."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from trainq.errors import ConfigError


def sentinel_addresses(value: str) -> tuple[tuple[str, int], ...]:
    """``(host, port)`` of each ``host:port`` in a comma-separated list."""
    found: list[tuple[str, int]] = []
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        host, sep, port = entry.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65_536:
            raise ConfigError(
                f"TRAINQ_REDIS_SENTINELS: {entry!r} is not host:port "
                "(e.g. sentinel-1:26379,sentinel-2:26379,sentinel-3:26379)"
            )
        found.append((host.strip("[]"), int(port)))
    return tuple(found)


def celery_url(redis_url: str, sentinels: tuple[tuple[str, int], ...], password: str) -> str:
    """The broker and result backend URL: ``redis_url`` with ``password`` (when given),
    or with sentinels one ``sentinel://`` URL per sentinel, joined by ";" (kombu's and
    Celery's form), each with the Redis password and ``redis_url``'s database."""
    parts = urlsplit(redis_url)
    if not sentinels:
        if not password:
            return redis_url
        user = quote(unquote(parts.username or ""), safe="")
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))
    password = password or unquote(parts.password or "")
    auth = f":{quote(password, safe='')}@" if password else ""
    db = parts.path.strip("/") or "0"
    return ";".join(f"sentinel://{auth}{host}:{port}/{db}" for host, port in sentinels)


def sentinel_kwargs(password: str) -> dict[str, Any]:
    """How every client (trainq's, kombu's, Celery's backend) talks to the sentinels: a
    sentinel that does not answer is skipped within a second (kombu PR #813)."""
    kwargs: dict[str, Any] = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}
    if password:
        kwargs["password"] = password
    return kwargs
