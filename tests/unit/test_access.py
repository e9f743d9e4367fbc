"""The authorization table (trainq.users.access), case by case."""

from __future__ import annotations

import pytest

from trainq.users.access import RULES, Action, Rule, decide, refusal
from trainq.users.model import Principal

ALICE = Principal("alice")
BOB = Principal("bob")
ADMIN = Principal("carol", admin=True)


def test_every_action_has_a_rule() -> None:
    assert set(RULES) == set(Action)


@pytest.mark.parametrize("action", [Action.CANCEL, Action.PRIORITY, Action.DOWNLOAD])
def test_only_the_owner_or_an_admin_may_touch_a_job(action: Action) -> None:
    assert decide(ALICE, action, "alice") == "allowed"
    assert decide(ADMIN, action, "alice") == "allowed"
    assert decide(BOB, action, "alice") == "forbidden"
    assert decide(BOB, action, None) == "forbidden"  # a job from before owners: admins only
    assert decide(BOB, action, "alice", "owner") == "hidden"


def test_reading_is_for_anyone_unless_only_owners_see_their_jobs() -> None:
    assert decide(BOB, Action.READ, "alice") == "allowed"
    assert decide(BOB, Action.READ, "alice", "owner") == "hidden"
    assert decide(ALICE, Action.READ, "alice", "owner") == "allowed"
    assert decide(ADMIN, Action.READ, "alice", "owner") == "allowed"
    assert decide(BOB, Action.SUBMIT) == "allowed"
    assert decide(BOB, Action.LIST, jobs_visible="owner") == "allowed"


@pytest.mark.parametrize("action", [a for a, rule in RULES.items() if rule == Rule.ADMIN])
def test_admin_actions_are_for_admins_whatever_the_visibility(action: Action) -> None:
    for visible in ("all", "owner"):
        assert decide(ADMIN, action, jobs_visible=visible) == "allowed"  # type: ignore[arg-type]
        assert decide(ALICE, action, jobs_visible=visible) == "forbidden"  # type: ignore[arg-type]


def test_a_refusal_names_the_owner_and_who_may() -> None:
    text = refusal(BOB, Action.CANCEL, "j1", "alice")
    assert "bob" in text and "alice's" in text and "owner or an admin" in text
