"""The REST API's answers as trainq's exceptions (:class:`~trainq.remote.http.ApiClient`
raises them).

=====================================  ============================================
the API answers                         raised
=====================================  ============================================
401                                     :class:`~trainq.errors.NotAuthenticated`
403                                     :class:`~trainq.errors.Forbidden`
404                                     :class:`~trainq.errors.JobNotFound`
409                                     :class:`~trainq.errors.AlreadyFinished`
422 (FastAPI's ``detail`` list)         :class:`~trainq.errors.SpecError`, field by field
429 with ``Retry-After``                retried after it, for up to ``retry_budget_s``;
                                        then :class:`~trainq.errors.RateLimited`
429 without (an owner's queued cap)     :class:`~trainq.errors.QuotaExceeded`
502 with a JSON ``detail``              :class:`~trainq.errors.ArtifactError` (the store)
503, 502/504 from a proxy, no answer    :class:`~trainq.errors.Unavailable`, naming the URL
anything else that is not a success     :class:`~trainq.errors.TrainqError`
=====================================  ============================================

Routes may name other exceptions for some codes (a download's 404 is
:class:`~trainq.errors.ArtifactNotFound`). No message ever holds the token.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from trainq.errors import (
    AlreadyFinished,
    ArtifactError,
    Forbidden,
    JobNotFound,
    NotAuthenticated,
    QuotaExceeded,
    SpecError,
    TrainqError,
    Unavailable,
)

_DEFAULT_RETRY_AFTER_S = 1.0
_BY_STATUS: dict[int, type[TrainqError]] = {
    403: Forbidden,
    404: JobNotFound,
    409: AlreadyFinished,
}
# Where FastAPI's validation errors say the bad value was (the rest of ``loc`` is the field).
_PLACES = ("body", "query", "path", "header")

Errors = Mapping[int, type[TrainqError]]
M = TypeVar("M", bound=BaseModel)


def error_of(
    response: httpx.Response, url: str, has_token: bool, errors: Errors | None = None
) -> TrainqError:
    """What a failed answer of the API at ``url`` means, as the module's table says."""
    code = response.status_code
    kind = (errors or {}).get(code) or _BY_STATUS.get(code)
    if kind is not None:
        return kind(detail(response))
    if code == 401 and not has_token:
        return NotAuthenticated(
            f"the API at {url} wants a token ({detail(response)}): set "
            "TRAINQ_TOKEN, or run `trainq login`"
        )
    if code == 401:
        return NotAuthenticated(f"the API at {url} refused the token: {detail(response)}")
    if code == 422:
        return invalid(response)
    if code == 429:
        return QuotaExceeded(detail(response))
    json_detail = _json_detail(response) is not None
    if code == 502 and json_detail:
        return ArtifactError(detail(response))
    if code == 503 or (code in (502, 504) and not json_detail):
        return Unavailable(f"the trainq API at {url} is unavailable ({code}): {detail(response)}")
    return TrainqError(f"the API at {url} answered {code}: {detail(response)}")


def detail(response: httpx.Response) -> str:
    """The answer's ``detail`` in one line, else the start of its body."""
    found = _json_detail(response)
    if isinstance(found, list):
        return str(invalid(response))
    text = str(found) if found is not None else response.text[:300]
    return " ".join(text.split()) or response.reason_phrase


def invalid(response: httpx.Response) -> SpecError:
    """A 422 as trainq says it: ``invalid job spec: epochs: Input should be ... (got 0)``,
    or ``invalid request: ...`` for a bad query or path parameter."""
    found = _json_detail(response)
    if not isinstance(found, list):
        return SpecError(f"invalid request: {' '.join(str(found or response.text).split())}")
    problems, place = [], "body"
    for item in found:
        item = item if isinstance(item, dict) else {"msg": str(item)}
        loc = [str(part) for part in item.get("loc") or []]
        if loc and loc[0] in _PLACES:
            place = loc[0] if loc[0] != "body" else place
            loc = loc[1:]
        msg = str(item.get("msg", "invalid"))
        if msg.startswith("invalid job spec: "):  # trainq's own SpecError, said already
            problems.append(msg.removeprefix("invalid job spec: "))
            continue
        if item.get("type") == "extra_forbidden":
            msg = "unknown field"
        elif "input" in item and item.get("type") != "missing":
            msg += f" (got {item['input']!r})"
        field = ".".join(loc)
        problems.append(f"{field}: {msg}" if field else msg)
    what = "invalid job spec" if place == "body" else "invalid request"
    return SpecError(f"{what}: {'; '.join(problems)}")


def parsed(model: type[M], data: Any, url: str) -> M:
    """``data`` as ``model``; TrainqError naming the API at ``url`` if it is not one."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise TrainqError(
            f"the API at {url} answered something trainq cannot read as a "
            f"{model.__name__}: {' '.join(str(exc).split())[:300]}"
        ) from None


def waiting_of(data: Any) -> str | None:
    """A job view's ``waiting``: why a queued job has not started."""
    waiting = data.get("waiting") if isinstance(data, dict) else None
    return waiting if isinstance(waiting, str) else None


def retry_after_s(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date); None without one."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return _DEFAULT_RETRY_AFTER_S


def _json_detail(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("detail") if isinstance(body, dict) else None
