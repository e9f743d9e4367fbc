"""One HTTP client of the trainq REST API: a bearer token, timeouts, 429 retries after
``Retry-After``, streaming; a failed answer raised as trainq's exception for it
(:mod:`trainq.remote.answers`). No message ever holds the token.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from trainq.errors import ConfigError, RateLimited, TrainqError, Unavailable
from trainq.remote.answers import Errors, detail, error_of, retry_after_s

log = logging.getLogger("trainq.remote")

# How long in all a call waits to retry while the API answers 429 with Retry-After.
RETRY_BUDGET_S = 30.0
# A token goes into a header: visible ASCII only (and never into an error message).
_TOKEN = re.compile(r"[\x21-\x7e]*")


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
        """What a failed answer means (:mod:`trainq.remote.answers`)."""
        return error_of(response, self.url, self._has_token, errors)


def job_path(job_id: str) -> str:
    """The job's route: ``/train/<id>``, the id quoted whole."""
    return f"/train/{quote(job_id, safe='')}"
