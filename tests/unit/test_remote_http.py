"""The remote client's answers → trainq's exceptions, its 429 retries, and its token."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from trainq.errors import (
    AlreadyFinished,
    ArtifactError,
    ConfigError,
    Forbidden,
    JobNotFound,
    NotAuthenticated,
    QuotaExceeded,
    RateLimited,
    SpecError,
    TrainqError,
    Unavailable,
)
from trainq.remote import ApiClient

URL = "http://api.test:8000"
TOKEN = "tq_s3cret-token"
Handler = Callable[[httpx.Request], httpx.Response]


class Clock:
    """A fake sleep that records each wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


def api(handler: Handler, clock: Clock | None = None, budget_s: float = 30.0) -> ApiClient:
    return ApiClient(
        URL,
        TOKEN,
        timeout_s=5,
        transport=httpx.MockTransport(handler),
        retry_budget_s=budget_s,
        sleep=(clock or Clock()).sleep,
    )


def answer(status: int, body: object = None, **headers: str) -> Handler:
    return lambda request: httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("status", "kind"),
    [(404, JobNotFound), (409, AlreadyFinished), (403, Forbidden), (401, NotAuthenticated)],
)
def test_each_refusal_is_trainqs_exception_with_the_apis_reason(
    status: int, kind: type[TrainqError]
) -> None:
    with pytest.raises(kind) as raised:
        api(answer(status, {"detail": "the reason"})).call("GET", "/train/x")
    assert "the reason" in str(raised.value)
    assert TOKEN not in str(raised.value)


def test_a_route_may_name_its_own_exception_for_a_code() -> None:
    client = api(answer(404, {"detail": "no such artifact"}))
    with pytest.raises(ArtifactError, match="no such artifact"):
        client.call("GET", "/x", errors={404: ArtifactError})


def test_a_bad_body_is_a_spec_error_naming_each_field_as_trainq_does() -> None:
    detail = [
        {"loc": ["body", "epochs"], "msg": "Input should be greater than or equal to 1",
         "type": "greater_than_equal", "input": 0},
        {"loc": ["body", "colour"], "msg": "Extra inputs are not permitted",
         "type": "extra_forbidden", "input": "red"},
        {"loc": ["body", "spec"], "msg": "Field required", "type": "missing", "input": {}},
    ]  # fmt: skip
    with pytest.raises(SpecError) as raised:
        api(answer(422, {"detail": detail})).call("POST", "/train")
    assert str(raised.value) == (
        "invalid job spec: epochs: Input should be greater than or equal to 1 (got 0); "
        "colour: unknown field; spec: Field required"
    )


def test_trainqs_own_spec_error_from_the_api_is_not_said_twice() -> None:
    own = [{"loc": ["body"], "msg": "invalid job spec: image: not allowed", "type": "spec_error"}]
    with pytest.raises(SpecError) as raised:
        api(answer(422, {"detail": own})).call("POST", "/train")
    assert str(raised.value) == "invalid job spec: image: not allowed"


def test_a_bad_query_parameter_is_an_invalid_request() -> None:
    bad = [{"loc": ["query", "cursor"], "msg": "malformed cursor 'x'", "type": "value_error"}]
    with pytest.raises(SpecError) as raised:
        api(answer(422, {"detail": bad})).call("GET", "/train")
    assert str(raised.value) == "invalid request: cursor: malformed cursor 'x'"


def test_503_and_silence_are_unavailable_naming_the_url() -> None:
    for handler in (
        answer(503, {"detail": "Redis does not answer"}, **{"Retry-After": "5"}),
        answer(502, None),  # a proxy whose API is gone (no JSON detail)
    ):
        with pytest.raises(Unavailable) as raised:
            api(handler).call("GET", "/train")
        assert URL in str(raised.value)

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    def silent(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    for handler in (refused, silent):
        with pytest.raises(Unavailable) as raised:
            api(handler).call("GET", "/train")
        assert URL in str(raised.value) and TOKEN not in str(raised.value)


def test_the_artifact_stores_failure_behind_the_api_is_an_artifact_error() -> None:
    with pytest.raises(ArtifactError, match="store down"):
        api(answer(502, {"detail": "store down"})).call("GET", "/train/x/artifacts/a")


def test_429_is_retried_after_retry_after_then_succeeds() -> None:
    answers = iter([
        httpx.Response(429, json={"detail": "slow down"}, headers={"Retry-After": "2"}),
        httpx.Response(429, json={"detail": "slow down"}, headers={"Retry-After": "3"}),
        httpx.Response(200, json={"ok": True}),
    ])  # fmt: skip
    clock = Clock()

    got = api(lambda request: next(answers), clock).fetch("GET", "/train")

    assert got == {"ok": True}
    assert clock.waits == [2.0, 3.0]


def test_429_beyond_the_retry_budget_fails_with_the_apis_message() -> None:
    clock = Clock()
    slow = answer(429, {"detail": "rate limit of 1/s"}, **{"Retry-After": "20"})

    with pytest.raises(RateLimited) as raised:
        api(slow, clock, budget_s=30).call("GET", "/train")

    assert clock.waits == [20.0]  # a second wait of 20 s would pass the 30 s budget
    assert "rate limit of 1/s" in str(raised.value)
    assert raised.value.retry_after_s == 20.0


def test_429_without_retry_after_is_the_owners_cap_and_is_not_retried() -> None:
    clock = Clock()
    with pytest.raises(QuotaExceeded, match="5 queued jobs"):
        api(answer(429, {"detail": "alice has 5 queued jobs"}), clock).call("POST", "/train")
    assert clock.waits == []


def test_the_token_is_sent_as_a_bearer_header() -> None:
    seen: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization", ""))
        return httpx.Response(200, json={})

    api(record).call("GET", "/me")
    assert seen == [f"Bearer {TOKEN}"]


def test_a_token_a_header_cannot_carry_is_refused_without_showing_it() -> None:
    with pytest.raises(ConfigError) as raised:
        ApiClient(URL, "tq_secret\nX-Evil: 1", timeout_s=1)
    assert "tq_secret" not in str(raised.value)
    with pytest.raises(ConfigError, match="http"):
        ApiClient("api.test:8000", TOKEN, timeout_s=1)
