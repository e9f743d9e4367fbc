"""Users and their tokens in Redis.

A user is one JSON string (``user:<name>``) and a member of the ``users`` set; a token
is a hash (``token:<id>``: user, sha256, created_at, last_used_at, revoked) and a member
of its user's ``user-tokens:<name>`` set. Only the sha256 of a token's secret is ever
written. Adding a user with its first token, and issuing a token, are Lua scripts: all
of it or none. Authenticating is one round trip (a script reads the token and its user)
plus, at most once a minute per token, a write of ``last_used_at``.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable
from typing import Any, cast

import redis
from redis.client import Pipeline

from trainq.errors import NotAuthenticated, UserExists, UserNotFound
from trainq.store.keys import Keys
from trainq.store.rates import GCRA_LUA, Rate
from trainq.users import tokens
from trainq.users.model import IssuedToken, Principal, TokenInfo, User
from trainq.users.protocols import (
    LAST_USED_RESOLUTION_S,
    UNKNOWN_TOKEN,
    check_name,
    name_taken,
    over_rate,
    token_not_found,
    user_not_found,
)

# Writes a new token (KEYS[a], KEYS[b]: its hash and its user's token set).
_WRITE_TOKEN = """
redis.call('HSET', KEYS[{hash}], 'user', ARGV[1], 'sha256', ARGV[3], 'created_at', ARGV[4],
           'revoked', '0')
redis.call('SADD', KEYS[{set}], ARGV[2])
"""
# ARGV: name, token id, sha256, created_at, user JSON. 0 when the name is taken.
_ADD = (
    """
if not redis.call('SET', KEYS[1], ARGV[5], 'NX') then return 0 end
redis.call('SADD', KEYS[2], ARGV[1])
"""
    + _WRITE_TOKEN.format(hash=3, set=4)
    + "return 1\n"
)
# ARGV: name, token id, sha256, created_at. 0 when there is no such user.
_ISSUE = (
    "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
    + _WRITE_TOKEN.format(hash=2, set=3)
    + "return 1\n"
)
_REVOKE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
redis.call('HSET', KEYS[1], 'revoked', '1')
return redis.call('HGETALL', KEYS[1])
"""
# The token's fields and its user's JSON ('' if none) in one round trip. The user's key
# is built here from ARGV[1] (Keys.user's prefix) and the token's user: a key the
# script does not declare, which a single Redis (trainq's) allows. With a rate
# (ARGV[3] interval µs, ARGV[4] burst), the request is also counted against the token's
# bucket (KEYS[2]) when the secret's digest (ARGV[2]) is the stored one, the token is
# live and its user enabled: {fields, user, allowed, µs to wait}. (Lua strings are
# interned: == compares them in constant time; Python checks the digest again.)
_AUTHENTICATE = (
    GCRA_LUA
    + """
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return {} end
local token = {}
for i = 1, #fields, 2 do token[fields[i]] = fields[i + 1] end
local user = redis.call('GET', ARGV[1] .. token['user']) or ''
local verdict = {1, 0}
if ARGV[3] ~= '' and token['sha256'] == ARGV[2] and token['revoked'] == '0' and user ~= ''
   and not cjson.decode(user)['disabled'] then
  verdict = gcra(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
end
return {fields, user, verdict[1], verdict[2]}
"""
)


class RedisUsers:
    """Users and tokens in Redis under ``keys``' prefix; ``clock`` gives the time."""

    def __init__(
        self, client: redis.Redis, keys: Keys, clock: Callable[[], float] = time.time
    ) -> None:
        self._redis = client
        self._keys = keys
        self._clock = clock
        self._add = client.register_script(_ADD)
        self._issue = client.register_script(_ISSUE)
        self._revoke = client.register_script(_REVOKE)
        self._authenticate = client.register_script(_AUTHENTICATE)

    def add(self, name: str, admin: bool = False) -> tuple[User, IssuedToken]:
        check_name(name)
        user = User(name=name, admin=admin, created_at=self._clock())
        issued, secret_digest = self._new_token(name)
        keys = [
            self._keys.user(name),
            self._keys.users,
            self._keys.token(issued.info.id),
            self._keys.user_tokens(name),
        ]
        args = [name, issued.info.id, secret_digest, repr(issued.info.created_at)]
        if not self._add(keys=keys, args=[*args, user.model_dump_json()]):
            raise UserExists(name_taken(name))
        return user, issued

    def get(self, name: str) -> User:
        raw = cast(str | None, self._redis.get(self._keys.user(name)))
        if raw is None:
            raise UserNotFound(user_not_found(name))
        return User.model_validate_json(raw)

    def list(self) -> builtins.list[User]:
        names = sorted(cast(set[str], self._redis.smembers(self._keys.users)))
        if not names:
            return []
        raws = cast(builtins.list[str | None], self._redis.mget(map(self._keys.user, names)))
        return [User.model_validate_json(raw) for raw in raws if raw is not None]

    def tokens(self, name: str | None = None) -> builtins.list[TokenInfo]:
        if name is not None:
            self.get(name)
            names = [name]
        else:
            names = sorted(cast(set[str], self._redis.smembers(self._keys.users)))
        pipe = self._redis.pipeline(transaction=False)
        for each in names:
            pipe.smembers(self._keys.user_tokens(each))
        ids = sorted(set[str]().union(*cast(builtins.list[set[str]], pipe.execute())))
        for token_id in ids:
            pipe.hgetall(self._keys.token(token_id))
        hashes = cast(builtins.list[dict[str, str]], pipe.execute())
        found = [_token_info(i, fields) for i, fields in zip(ids, hashes, strict=True) if fields]
        return sorted(found, key=lambda t: (t.created_at, t.id))

    def issue(self, name: str) -> IssuedToken:
        issued, secret_digest = self._new_token(name)
        keys = [
            self._keys.user(name),
            self._keys.token(issued.info.id),
            self._keys.user_tokens(name),
        ]
        args = [name, issued.info.id, secret_digest, repr(issued.info.created_at)]
        if not self._issue(keys=keys, args=args):
            raise UserNotFound(user_not_found(name))
        return issued

    def revoke(self, token_id: str) -> TokenInfo:
        if not tokens.is_token_id(token_id):  # never a key of ours; perhaps a whole token
            raise UserNotFound(token_not_found(token_id))
        flat = cast(builtins.list[str], self._revoke(keys=[self._keys.token(token_id)]))
        if not flat:
            raise UserNotFound(token_not_found(token_id))
        return _token_info(token_id, _pairs(flat))

    def disable(self, name: str) -> User:
        return self._set_disabled(name, True)

    def enable(self, name: str) -> User:
        return self._set_disabled(name, False)

    def authenticate(self, token: str, rate: Rate | None = None) -> Principal:
        token_id, secret = tokens.parse(token)
        key = self._keys.token(token_id)
        keys = [key, self._keys.token_rate(token_id)]
        limit = rate.args if rate is not None else ["", ""]
        found = cast(
            builtins.list[Any],
            self._authenticate(
                keys=keys, args=[self._keys.user(""), tokens.digest(secret), *limit]
            ),
        )
        if not found:
            raise NotAuthenticated(UNKNOWN_TOKEN)
        fields = _pairs(cast(builtins.list[str], found[0]))
        user_json = cast(str, found[1])
        if fields.get("revoked") != "0" or not user_json:
            raise NotAuthenticated(UNKNOWN_TOKEN)
        if not tokens.matches(secret, fields.get("sha256", "")):
            raise NotAuthenticated(UNKNOWN_TOKEN)
        user = User.model_validate_json(user_json)
        if user.disabled:
            raise NotAuthenticated(f"user {user.name} is disabled")
        now = self._clock()
        last = fields.get("last_used_at")
        if last is None or now - float(last) >= LAST_USED_RESOLUTION_S:
            self._redis.hset(key, "last_used_at", repr(now))
        if rate is not None and not int(found[2]):
            raise over_rate(rate, int(found[3]) / 1_000_000)
        return Principal(user.name, admin=user.admin, token_id=token_id)

    def _new_token(self, name: str) -> tuple[IssuedToken, str]:
        """A new token of ``name`` (not stored yet) and the digest to store."""
        token_id, secret, token = tokens.new_token()
        info = TokenInfo(id=token_id, user=name, created_at=self._clock())
        return IssuedToken(info=info, secret=token), tokens.digest(secret)

    def _set_disabled(self, name: str, disabled: bool) -> User:
        key = self._keys.user(name)
        changed: builtins.list[User] = []

        def change(pipe: Pipeline) -> None:
            raw = cast(str | None, pipe.get(key))
            if raw is None:
                raise UserNotFound(user_not_found(name))
            user = User.model_validate_json(raw).model_copy(update={"disabled": disabled})
            pipe.multi()
            pipe.set(key, user.model_dump_json())
            changed[:] = [user]

        self._redis.transaction(change, key)
        return changed[0]


def _pairs(flat: builtins.list[str]) -> dict[str, str]:
    """HGETALL's answer from a script (a flat list) as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _token_info(token_id: str, fields: dict[str, str]) -> TokenInfo:
    last = fields.get("last_used_at")
    return TokenInfo(
        id=token_id,
        user=fields["user"],
        created_at=float(fields["created_at"]),
        last_used_at=float(last) if last else None,
        revoked=fields.get("revoked") == "1",
    )
