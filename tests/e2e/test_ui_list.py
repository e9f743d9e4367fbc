"""The jobs list (``/ui/``) in a real browser over more than one page: Chromium through
Playwright against a real API server and Redis, no worker.

A user's 60 finished jobs are written to the store through the client (what a worker
would have left behind), so the list has two pages of them. The person clicks "Next
page" and sees the older ten; types part of a name and sees only the jobs whose names
hold it, one of them from the second page, and a new one as it appears; clears it and
is back to the newest fifty. The API's ``name`` filter is also checked on its own: its
pages and its 422s.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import Page

from tests.e2e.ui_browser import Browsing, log_in, shown
from tests.harness import REPO
from trainq import connections
from trainq.jobs.record import JobRecord
from trainq.jobs.spec import JobSpec
from trainq.jobs.status import JobStatus
from trainq.testing import ApiServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

PAGE_SIZE = 50  # jobs.js's
JOBS = 60
# Indexes (0 the oldest) of the two jobs whose names hold "zebra": the newer is on the
# first page, the older only on the second.
ZEBRAS = {57: "Zebra-new", 3: "old-ZEBRA"}


@dataclass(frozen=True)
class Site:
    url: str
    user: str
    token: str
    api: httpx.Client  # the same user, with a bearer token
    ids: list[str]  # the user's jobs, newest first

    def add_job(self, name: str) -> str:
        """A new finished job of the user, newer than all the others; its id."""
        return _finished_job(self.user, name, time.time())


def _finished_job(owner: str, name: str, created_at: float) -> str:
    job_id = str(uuid.uuid4())
    record = JobRecord(
        id=job_id,
        status=JobStatus.SUCCEEDED,
        spec=JobSpec(name=name, epochs=1),
        owner=owner,
        created_at=created_at,
        updated_at=created_at + 1,
        started_at=created_at,
        finished_at=created_at + 1,
    )
    assert connections.records().create(record)
    return job_id


@pytest.fixture(scope="module")
def site(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """An API server on the tests' Redis, and a user of it with 60 finished jobs."""
    user = f"list-{uuid.uuid4().hex[:6]}"
    token = connections.users().add(user)[1].secret
    start = time.time() - 3600
    oldest_first = [
        _finished_job(user, ZEBRAS.get(i, f"batch-{i:02d}"), start + i) for i in range(JOBS)
    ]
    folder = tmp_path_factory.mktemp("ui-list-api")
    server = ApiServer(folder / "api.log", {"TRAINQ_API_RATE_PER_S": "0"}, cwd=REPO).start()
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as api:
            yield Site(server.url, user, token, api, oldest_first[::-1])
    finally:
        server.stop()


def listed(page: Page) -> list[str]:
    """The job ids of the rows shown, top to bottom."""
    ids: list[str] = page.eval_on_selector_all(
        "#jobs-body tr", "rows => rows.map((row) => row.dataset.jobId)"
    )
    return ids


def test_next_page_shows_older_jobs_and_the_name_filter_finds_them_anywhere(
    browsing: Browsing, site: Site
) -> None:
    newest, older = site.ids[:PAGE_SIZE], site.ids[PAGE_SIZE:]
    zebra_new, zebra_old = site.ids[JOBS - 1 - 57], site.ids[JOBS - 1 - 3]
    assert zebra_new in newest and zebra_old in older
    with browsing as page:
        log_in(page, site.token)
        page.goto(f"/ui/?owner={site.user}")  # this user's jobs only
        shown(lambda: listed(page) == newest, "the newest 50 jobs on page 1")
        assert page.locator("#page-prev").is_disabled()

        page.get_by_role("button", name="Next page").click()
        shown(lambda: listed(page) == older, "the 10 older jobs on page 2")
        assert page.locator("#page-number").text_content() == "page 2"
        assert page.locator("#page-next").is_disabled()

        # Typed, not applied: the list follows the box once typing stops.
        page.locator("#filter-name").press_sequentially("zEbRa", delay=50)
        shown(lambda: listed(page) == [zebra_new, zebra_old], "only the two zebras")
        assert page.locator("#page-number").text_content() == "page 1"
        assert page.locator("#page-next").is_disabled()
        assert "name=zEbRa" in page.url
        names = page.locator("#jobs-body td.name").all_text_contents()
        assert names == ["Zebra-new", "old-ZEBRA"]

        live = site.add_job("zebra-live")
        shown(lambda: listed(page) == [live, zebra_new, zebra_old], "a new zebra, live")

        page.fill("#filter-name", "")
        shown(lambda: listed(page) == [live, *newest[:-1]], "the newest 50 again")
        assert not page.locator("#page-next").is_disabled()


def test_the_api_pages_a_name_filter_and_refuses_a_bad_one(site: Site) -> None:
    everything = site.api.get("/train", params={"owner": site.user, "limit": 500}).json()
    zebras = [job["id"] for job in everything["jobs"] if "zebra" in job["spec"]["name"].lower()]
    assert len(zebras) >= 2  # and a third when the browser test ran first

    walked: list[str] = []
    cursor: str | None = None
    for _ in zebras:
        params: dict[str, str | int] = {"owner": site.user, "name": "ZEBRA", "limit": 1}
        if cursor is not None:
            params["cursor"] = cursor
        answer = site.api.get("/train", params=params)
        assert answer.status_code == 200, answer.text
        walked += [job["id"] for job in answer.json()["jobs"]]
        cursor = answer.json()["next_cursor"]
    assert walked == zebras
    assert cursor is None

    for bad in ("a b", "", "x" * 129, "zebra%"):
        refused = site.api.get("/train", params={"owner": site.user, "name": bad})
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.json()["detail"][0]["loc"] == ["query", "name"], refused.text
