"""Tokens (format, parsing, digests) and the users' store contract, run against the
in-memory twin.

Every store test takes the ``users`` and ``clock`` fixtures only, so
tests/integration/test_users_store.py runs the same tests against Redis.
"""

from __future__ import annotations

import hashlib
import re
import string

import pytest

from trainq.errors import NotAuthenticated, UserExists, UserNotFound
from trainq.users import tokens
from trainq.users.memory import MemoryUsers
from trainq.users.model import Principal
from trainq.users.protocols import LAST_USED_RESOLUTION_S, UserStore

_URLSAFE = set(string.ascii_letters + string.digits + "_-")


class FakeClock:
    """The time a store sees: starts at a fixed instant, moves only when told."""

    def __init__(self, now: float = 1_700_000_000.25) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def users(clock: FakeClock) -> UserStore:
    return MemoryUsers(clock=clock)


def _refusal(users: UserStore, token: str) -> str:
    with pytest.raises(NotAuthenticated) as caught:
        users.authenticate(token)
    message = str(caught.value)
    assert token not in message
    _, _, secret = token.partition("_")[2].partition("_")
    assert not secret or secret not in message
    return message


# Tokens ------------------------------------------------------------------------------


def test_new_token_is_prefix_hex_id_and_a_43_character_urlsafe_secret() -> None:
    token_id, secret, token = tokens.new_token()

    assert re.fullmatch(r"[0-9a-f]{16}", token_id)
    assert len(secret) == 43 and set(secret) <= _URLSAFE
    assert token == f"tq_{token_id}_{secret}"
    assert tokens.parse(token) == (token_id, secret)


def test_new_tokens_differ() -> None:
    made = [tokens.new_token() for _ in range(50)]

    assert len({t[0] for t in made}) == 50
    assert len({t[1] for t in made}) == 50


def test_parse_keeps_underscores_and_dashes_of_the_secret() -> None:
    secret = "_-" + "a" * 39 + "_-"

    assert tokens.parse(f"tq_0123456789abcdef_{secret}") == ("0123456789abcdef", secret)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "tq_deadbeef",
        "Bearer tq_0123456789abcdef_" + "s" * 43,
        "tq_0123456789ABCDEF_" + "s" * 43,  # the id is lower-case hex
        "tq_0123456789abcde_" + "s" * 43,  # 15 hex digits
        "xx_0123456789abcdef_" + "s" * 43,
        "tq_0123456789abcdef_" + "s" * 42,  # a secret too short
        "tq_0123456789abcdef_" + "s" * 42 + "!",
        "tq_0123456789abcdef_" + "s" * 43 + "\n",
        "a-plain-shared-token-from-TRAINQ_API_TOKENS",
    ],
)
def test_parse_refuses_malformed_tokens_without_quoting_them(token: str) -> None:
    with pytest.raises(NotAuthenticated) as caught:
        tokens.parse(token)

    message = str(caught.value)
    assert message.startswith("malformed bearer token: ")
    assert not token or token.strip() not in message


def test_digest_is_the_sha256_of_the_secret_and_matches_only_it() -> None:
    _, secret, _ = tokens.new_token()
    stored = tokens.digest(secret)

    assert stored == hashlib.sha256(secret.encode()).hexdigest()
    assert tokens.matches(secret, stored)
    assert not tokens.matches(secret[:-1] + ("A" if secret[-1] != "A" else "B"), stored)
    assert not tokens.matches(secret, "")


def test_is_token_id() -> None:
    token_id, _, token = tokens.new_token()

    assert tokens.is_token_id(token_id)
    assert not tokens.is_token_id(token)
    assert not tokens.is_token_id(token_id.upper())


# The store's contract ----------------------------------------------------------------


def test_add_returns_the_user_and_a_token_that_authenticates_as_it(
    users: UserStore, clock: FakeClock
) -> None:
    user, issued = users.add("alice")

    assert (user.name, user.admin, user.disabled, user.created_at) == (
        "alice",
        False,
        False,
        clock.now,
    )
    assert issued.info.user == "alice" and not issued.info.revoked
    assert issued.secret.startswith(f"tq_{issued.info.id}_")
    assert users.get("alice") == user
    assert users.authenticate(issued.secret) == Principal(
        "alice", admin=False, token_id=issued.info.id
    )


def test_an_admin_authenticates_as_an_admin(users: UserStore) -> None:
    _, issued = users.add("root.ops@example.org", admin=True)

    principal = users.authenticate(issued.secret)

    assert principal == Principal("root.ops@example.org", admin=True, token_id=issued.info.id)


def test_a_taken_name_is_refused_and_the_first_user_kept(users: UserStore) -> None:
    first, issued = users.add("bob", admin=True)

    with pytest.raises(UserExists, match="bob"):
        users.add("bob")

    assert users.get("bob") == first
    assert [t.id for t in users.tokens("bob")] == [issued.info.id]


@pytest.mark.parametrize("name", ["", "-bob", "bob smith", "bob\n", "a" * 65, "bob/x", "b:c"])
def test_an_invalid_name_is_refused_naming_the_rule_and_nothing_is_stored(
    users: UserStore, name: str
) -> None:
    with pytest.raises(ValueError, match="letters, digits") as caught:
        users.add(name)

    assert "pattern" in str(caught.value)
    assert users.list() == []
    assert users.tokens() == []


def test_get_of_an_unknown_user_is_not_found(users: UserStore) -> None:
    with pytest.raises(UserNotFound, match="carol"):
        users.get("carol")


def test_list_is_sorted_by_name(users: UserStore, clock: FakeClock) -> None:
    for name in ("mallory", "Zed", "alice", "bob"):
        users.add(name)
        clock.advance(1)

    assert [u.name for u in users.list()] == ["Zed", "alice", "bob", "mallory"]


def test_tokens_lists_all_or_one_users_oldest_first(users: UserStore, clock: FakeClock) -> None:
    _, a1 = users.add("alice")
    clock.advance(5)
    _, b1 = users.add("bob")
    clock.advance(5)
    a2 = users.issue("alice")

    assert [t.id for t in users.tokens()] == [a1.info.id, b1.info.id, a2.info.id]
    assert [t.id for t in users.tokens("alice")] == [a1.info.id, a2.info.id]
    assert [t.created_at for t in users.tokens("alice")] == [clock.now - 10, clock.now]
    with pytest.raises(UserNotFound):
        users.tokens("carol")


def test_issue_gives_another_token_and_both_authenticate(users: UserStore) -> None:
    _, first = users.add("alice")

    second = users.issue("alice")

    assert second.info.id != first.info.id and second.secret != first.secret
    assert users.authenticate(first.secret).token_id == first.info.id
    assert users.authenticate(second.secret).token_id == second.info.id
    with pytest.raises(UserNotFound, match="carol"):
        users.issue("carol")


def test_a_revoked_token_is_refused_and_the_users_other_tokens_still_work(
    users: UserStore,
) -> None:
    _, first = users.add("alice")
    second = users.issue("alice")

    revoked = users.revoke(first.info.id)

    assert revoked.id == first.info.id and revoked.revoked
    assert _refusal(users, first.secret) == "unknown or revoked token"
    assert users.authenticate(second.secret).name == "alice"
    assert {t.id: t.revoked for t in users.tokens("alice")} == {
        first.info.id: True,
        second.info.id: False,
    }
    assert users.revoke(first.info.id).revoked  # again: still revoked, no error


def test_revoke_of_an_unknown_id_is_not_found_and_never_echoes_a_whole_token(
    users: UserStore,
) -> None:
    _, issued = users.add("alice")

    with pytest.raises(UserNotFound, match="no token with id 0123456789abcdef"):
        users.revoke("0123456789abcdef")
    with pytest.raises(UserNotFound) as caught:
        users.revoke(issued.secret)  # the whole token where its id belongs

    assert issued.secret not in str(caught.value)
    assert "no token with" in str(caught.value)
    assert users.authenticate(issued.secret).name == "alice"


def test_a_disabled_users_tokens_are_refused_until_enabled(users: UserStore) -> None:
    _, issued = users.add("alice")

    disabled = users.disable("alice")

    assert disabled.disabled and users.get("alice").disabled
    assert _refusal(users, issued.secret) == "user alice is disabled"
    later = users.issue("alice")  # a disabled user may be given tokens, unusable yet
    assert _refusal(users, later.secret) == "user alice is disabled"

    enabled = users.enable("alice")

    assert not enabled.disabled and not users.get("alice").disabled
    assert users.authenticate(issued.secret).name == "alice"
    assert users.authenticate(later.secret).name == "alice"
    for change in (users.disable, users.enable):
        with pytest.raises(UserNotFound, match="carol"):
            change("carol")


def test_malformed_unknown_and_wrong_secret_tokens_are_refused_without_quoting_them(
    users: UserStore,
) -> None:
    _, issued = users.add("alice")
    token_id, secret = tokens.parse(issued.secret)
    wrong_secret = f"tq_{token_id}_{secret[::-1]}"
    unknown_id = f"tq_{'0' * 16}_{secret}"

    assert _refusal(users, "not-a-token").startswith("malformed bearer token")
    assert _refusal(users, issued.secret + "!").startswith("malformed bearer token")
    assert _refusal(users, wrong_secret) == "unknown or revoked token"
    assert _refusal(users, unknown_id) == "unknown or revoked token"


def test_a_wrong_secret_does_not_reveal_that_the_user_is_disabled(users: UserStore) -> None:
    _, issued = users.add("alice")
    token_id, secret = tokens.parse(issued.secret)
    users.disable("alice")

    assert _refusal(users, f"tq_{token_id}_{secret[::-1]}") == "unknown or revoked token"


def test_last_used_is_written_at_most_once_a_minute(users: UserStore, clock: FakeClock) -> None:
    _, issued = users.add("alice")
    assert users.tokens("alice")[0].last_used_at is None
    first_use = clock.now

    users.authenticate(issued.secret)
    assert users.tokens("alice")[0].last_used_at == first_use

    clock.advance(LAST_USED_RESOLUTION_S - 1)
    users.authenticate(issued.secret)
    assert users.tokens("alice")[0].last_used_at == first_use

    clock.advance(1)
    users.authenticate(issued.secret)
    assert users.tokens("alice")[0].last_used_at == clock.now


def test_a_refused_token_is_not_marked_used(users: UserStore) -> None:
    _, issued = users.add("alice")
    users.disable("alice")

    _refusal(users, issued.secret)

    assert users.tokens("alice")[0].last_used_at is None
