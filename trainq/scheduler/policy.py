"""What the scheduler allows each owner: quotas, the highest priority, a fair-share weight.

An admin sets them per user (``trainq users quota NAME --gpus 2 --jobs 4``); an owner
nobody set anything for gets the defaults: no running quota, the cluster's queued cap
(``TRAINQ_MAX_QUEUED_PER_USER``), ``TRAINQ_DEFAULT_MAX_PRIORITY`` and weight 1. The
policy lives in Redis as one hash per owner (``policy:<owner>``), so it applies to
any owner, user account or not (a direct client's ``TRAINQ_USER``).
"""

from __future__ import annotations

from typing import cast

import redis
from pydantic import BaseModel, Field

from trainq.errors import Forbidden
from trainq.jobs.spec import PRIORITIES, Priority
from trainq.store.keys import Keys

# Priorities by rank: higher is admitted first.
RANK: dict[str, int] = {name: rank for rank, name in enumerate(PRIORITIES)}


class OwnerPolicy(BaseModel):
    """An owner's scheduling policy; None: no limit (or the cluster's default)."""

    gpus: int | None = Field(default=None, ge=0, description="Most GPUs running at once")
    jobs: int | None = Field(default=None, ge=0, description="Most jobs running at once")
    queued: int | None = Field(
        default=None, ge=0, description="Most queued jobs (default TRAINQ_MAX_QUEUED_PER_USER)"
    )
    max_priority: Priority | None = Field(
        default=None, description="Highest priority (default TRAINQ_DEFAULT_MAX_PRIORITY)"
    )
    weight: float = Field(default=1.0, gt=0, le=1000, description="Fair-share weight")

    def highest(self, default: Priority) -> Priority:
        return self.max_priority or default


def check_priority(priority: Priority, policy: OwnerPolicy, default: Priority, owner: str) -> None:
    """Forbidden, naming the most ``owner`` may use, when ``priority`` is above it."""
    highest = policy.highest(default)
    if RANK[priority] > RANK[highest]:
        raise Forbidden(
            f"priority {priority!r} is above the highest {owner} may use ({highest!r}); "
            "an admin can raise it: trainq users quota NAME --max-priority high"
        )


class Policies:
    """The owners' policies in Redis."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys

    def get(self, owner: str) -> OwnerPolicy:
        raw = cast(dict[str, str], self._redis.hgetall(self._keys.owner_policy(owner)))
        return parse(raw)

    def many(self, owners: list[str]) -> dict[str, OwnerPolicy]:
        """Each owner's policy, in one round trip."""
        with self._redis.pipeline(transaction=False) as pipe:
            for owner in owners:
                pipe.hgetall(self._keys.owner_policy(owner))
            raws = cast(list[dict[str, str]], pipe.execute())
        return {owner: parse(raw) for owner, raw in zip(owners, raws, strict=True)}

    def set(self, owner: str, policy: OwnerPolicy) -> OwnerPolicy:
        """Replace the owner's policy (fields left None are removed: defaults apply)."""
        key = self._keys.owner_policy(owner)
        fields = [(k, str(v)) for k, v in policy.model_dump().items() if v is not None]
        with self._redis.pipeline() as pipe:
            pipe.delete(key)
            for name, value in fields:
                pipe.hset(key, name, value)
            pipe.execute()
        return policy

    def update(self, owner: str, changes: dict[str, object]) -> OwnerPolicy:
        """Set the fields in ``changes`` (None: remove, the default applies) in one
        transaction, leaving the others as they are; the policy after.
        ValueError (naming the field) for a value the policy refuses."""
        unknown = set(changes) - set(OwnerPolicy.model_fields)
        if unknown:
            raise ValueError(f"unknown policy fields: {', '.join(sorted(unknown))}")
        OwnerPolicy.model_validate({k: v for k, v in changes.items() if v is not None})
        key = self._keys.owner_policy(owner)
        with self._redis.pipeline() as pipe:  # MULTI: all the fields or none
            for name, value in changes.items():
                if value is None:
                    pipe.hdel(key, name)
                else:
                    pipe.hset(key, name, str(value))
            pipe.hgetall(key)
            raw = cast(dict[str, str], pipe.execute()[-1])
        return parse(raw)


def parse(raw: dict[str, str]) -> OwnerPolicy:
    values: dict[str, object] = {}
    for name in ("gpus", "jobs", "queued"):
        if name in raw:
            values[name] = int(raw[name])
    if "max_priority" in raw:
        values["max_priority"] = raw["max_priority"]
    if "weight" in raw:
        values["weight"] = float(raw["weight"])
    return OwnerPolicy.model_validate(values)
