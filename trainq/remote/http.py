"""One HTTP client of the trainq REST API, and the API's answers as trainq's exceptions.

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

import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

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

log = logging.getLogger("trainq.remote")

# How long in all a call waits to retry while the API answers 429 with Retry-After.
RETRY_BUDGET_S = 30.0
_DEFAULT_RETRY_AFTER_S = 1.0
# A token goes into a header: visible ASCII only (and never into an error message).
_TOKEN = re.compile(r"[\x21-\x7e]*")
_BY_STATUS: dict[int, type[TrainqError]] = {
    403: Forbidden,
    404: JobNotFound,
    409: AlreadyFinished,
}
# Where FastAPI's validation errors say the bad value was (the rest of ``loc`` is the field).
_PLACES = ("body", "query", "path", "header")

Errors = Mapping[int, type[TrainqError]]


class ApiClient:
    """A sync client of the API at ``url`` with a bearer ``token``; a context manager."""

    def __init__(
        self,
        url: str,
        token: str,
        timeout_s: float,
        *,
        transport: httpx.BaseTransport | None = None,
        retry_budget_s: float = RETRY_BUDGET_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"the API URL {url!r} is not an http:// or https:// URL")
        if not _TOKEN.fullmatch(token):
            raise ConfigError("the API token holds characters an HTTP header cannot carry")
        self.timeout_s = timeout_s
        self._has_token = bool(token)
        self._retry_budget_s = retry_budget_s
        self._sleep = sleep
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout_s, transport=transport
        )

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        errors: Errors | None = None,
    ) -> httpx.Response:
        """The answer, read whole; a failure as the module's table says."""
        return self._send(method, path, params, json, errors, stream=False, timeout=None)

    def fetch(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        errors: Errors | None = None,
    ) -> Any:
        """The answer's JSON body (TrainqError naming the API if it is not JSON)."""
        response = self.call(method, path, params=params, json=json, errors=errors)
        try:
            return response.json()
        except ValueError:
            raise TrainqError(
                f"the API at {self.url} answered {method} {path} with no JSON body"
            ) from None

    @contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        errors: Errors | None = None,
        read_timeout_s: float | None = None,
    ) -> Iterator[httpx.Response]:
        """The answer as it comes (a follow, a download); ``read_timeout_s``: how long
        to wait between two chunks, if not the client's timeout (a follow of a quiet
        job, whose API sends a keep-alive every 15 s)."""
        timeout = None
        if read_timeout_s is not None:
            timeout = httpx.Timeout(self.timeout_s, read=max(read_timeout_s, self.timeout_s))
        response = self._send(method, path, params, None, errors, stream=True, timeout=timeout)
        try:
            yield response
        except httpx.TransportError as exc:  # the connection broke mid-answer
            raise self.unreachable(exc) from None
        finally:
            response.close()

    def unreachable(self, reason: object) -> Unavailable:
        return Unavailable(
            f"the trainq API at {self.url} does not answer ({reason}): start it, or set "
            "TRAINQ_API_URL / run `trainq login` with its address"
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        errors: Errors | None,
        *,
        stream: bool,
        timeout: httpx.Timeout | None,
    ) -> httpx.Response:
        waited_s = 0.0
        given = {k: v for k, v in (params or {}).items() if v is not None}
        while True:
            request = self._http.build_request(
                method,
                path,
                params=given,
                json=json,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
            try:
                response = self._http.send(request, stream=stream)
                if response.is_success:
                    return response
                response.read()
            except httpx.TransportError as exc:
                raise self.unreachable(exc) from None
            response.close()
            wait_s = retry_after_s(response)
            if response.status_code == 429 and wait_s is not None:
                if waited_s + wait_s <= self._retry_budget_s:
                    log.info("the API at %s asks to wait %.1f s (429); retrying", self.url, wait_s)
                    self._sleep(wait_s)
                    waited_s += wait_s
                    continue
                raise RateLimited(
                    f"the API at {self.url} refuses more requests now: {detail(response)} "
                    f"(try again in {wait_s:g} s)",
                    wait_s,
                )
            raise self.error(response, errors)

    def error(self, response: httpx.Response, errors: Errors | None = None) -> TrainqError:
        """What a failed answer means, as the module's table says."""
        code = response.status_code
        kind = (errors or {}).get(code) or _BY_STATUS.get(code)
        if kind is not None:
            return kind(detail(response))
        if code == 401 and not self._has_token:
            return NotAuthenticated(
                f"the API at {self.url} wants a token ({detail(response)}): set "
                "TRAINQ_TOKEN, or run `trainq login`"
            )
        if code == 401:
            return NotAuthenticated(f"the API at {self.url} refused the token: {detail(response)}")
        if code == 422:
            return invalid(response)
        if code == 429:
            return QuotaExceeded(detail(response))
        json_detail = _json_detail(response) is not None
        if code == 502 and json_detail:
            return ArtifactError(detail(response))
        if code == 503 or (code in (502, 504) and not json_detail):
            return Unavailable(
                f"the trainq API at {self.url} is unavailable ({code}): {detail(response)}"
            )
        return TrainqError(f"the API at {self.url} answered {code}: {detail(response)}")


def job_path(job_id: str) -> str:
    """The job's route: ``/train/<id>``, the id quoted whole."""
    return f"/train/{quote(job_id, safe='')}"


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
