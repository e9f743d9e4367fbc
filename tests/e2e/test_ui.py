"""The web page (``/ui``) in a real browser: Chromium through Playwright, against a real
API server, Redis and a process-runtime worker running train.py.

A person logs in through the form; clones a finished job with more epochs and watches
the new job's progress bar advance, its loss curve gain points and its console grow
while it runs; finds a running job on the list and the cluster page and cancels it from
its page; compares two finished jobs; reads a console line holding HTML as text; logs
out. A failing test saves the page's screenshot under its tmp dir (named after the
test). With ``TRAINQ_UI_SCREENSHOTS=docs/screenshots`` the tests also take the README's
screenshots (tests/e2e/ui_browser.py).
"""

from __future__ import annotations

import re
import socket
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import Dialog

from tests.e2e.ui_browser import (
    Browsing,
    attribute,
    log_in,
    number,
    page_state,
    readme_screenshot,
    shown,
    steps,
)
from tests.harness import REPO, Worker, wait_until
from trainq import connections
from trainq.testing import ApiServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

# train.py sleeping after each epoch: a job runs long enough to watch.
SLOW_TRAIN = [sys.executable, str(REPO / "train.py"), "--epoch-sleep-s", "1"]
XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
FINAL = ("succeeded", "failed", "cancelled", "timed_out")


@dataclass(frozen=True)
class Site:
    url: str
    user: str
    token: str
    api: httpx.Client  # the same user, with a bearer token

    def submit(self, **spec: Any) -> str:
        answer = self.api.post("/train", json=spec)
        assert answer.status_code == 202, answer.text
        job_id: str = answer.json()["id"]
        return job_id

    def job(self, job_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.api.get(f"/train/{job_id}").json()
        return found

    def wait_for(self, job_id: str, *statuses: str, timeout_s: float = 120) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            job = self.job(job_id)
            return job if job["status"] in statuses else None

        job = wait_until(reached, timeout_s, f"job {job_id} to be {statuses}")
        assert job is not None
        return job


@pytest.fixture(scope="module")
def site(worker: Worker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """An API server on the worker's Redis, and a user of it."""
    user = f"ui-{uuid.uuid4().hex[:6]}"
    token = connections.users().add(user)[1].secret
    folder = tmp_path_factory.mktemp("ui-api")
    server = ApiServer(folder / "api.log", {"TRAINQ_API_RATE_PER_S": "0"}, cwd=REPO).start()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as api:
        yield Site(server.url, user, token, api)
    server.stop()


@pytest.fixture(scope="module")
def finished(site: Site) -> tuple[str, str]:
    """Two finished jobs of 4 epochs, with different learning rates."""
    small = site.submit(name="lr-small", epochs=4, learning_rate=0.001, command=SLOW_TRAIN)
    large = site.submit(name="lr-large", epochs=4, learning_rate=0.01, command=SLOW_TRAIN)
    for job_id in (small, large):
        job = site.wait_for(job_id, *FINAL)
        assert job["status"] == "succeeded", job["error"]
    return small, large


def test_log_in_clone_a_job_and_watch_it_run(
    browsing: Browsing, site: Site, finished: tuple[str, str]
) -> None:
    source = finished[0]
    with browsing as page:
        log_in(page, site.token, f"/ui/jobs/{source}")
        shown(lambda: page_state(page)["points"] == 4, "the finished job's 4 points")
        assert page.locator("#job-status").text_content() == "succeeded"
        assert page.locator('#spec-body tr[data-key="learning_rate"] td').text_content() == "0.001"

        page.click("#clone-open")
        assert page.input_value("#clone-epochs") == "4"
        assert page.input_value("#clone-name") == "lr-small"
        page.fill("#clone-epochs", "8")
        page.click("#clone-submit")
        page.wait_for_url(re.compile(r"/ui/jobs/(?!" + re.escape(source) + r"$)[0-9a-f-]+$"))
        clone = page.url.rsplit("/", 1)[-1]

        seen: list[dict[str, Any]] = []

        def ended() -> bool:
            seen.append(page_state(page))
            return seen[-1]["status"] in FINAL

        shown(ended, "the cloned job to end", timeout_s=120)
        running = [s for s in seen if s["status"] == "running"]
        assert steps(running, "points") >= 2, running
        assert steps(running, "progress") >= 2, running
        assert steps(running, "lines") >= 1, running
        assert seen[-1]["status"] == "succeeded", site.job(clone)["error"]
        shown(lambda: page_state(page)["points"] == 8, "all 8 points")
        assert attribute(page, "#job-progress", "max") == "8"
        assert number(page, "#job-progress", "value") == 8
        readme_screenshot(page, "job.png")

    spec = site.job(clone)["spec"]
    assert (spec["epochs"], spec["name"], spec["learning_rate"]) == (8, "lr-small", 0.001)
    assert spec["command"] == SLOW_TRAIN


def test_find_a_running_job_on_the_list_and_cluster_and_cancel_it(
    browsing: Browsing, site: Site, worker: Worker
) -> None:
    job_id = site.submit(name="long-run", epochs=60, command=SLOW_TRAIN)
    row = f'#jobs-body tr[data-job-id="{job_id}"]'
    with browsing as page:
        log_in(page, site.token, "/ui/")
        # The list updates by itself: the job's row starts running and its bar advances.
        shown(lambda: page.locator(f"{row}[data-status=running]").count(), "the job running")
        shown(lambda: number(page, f"{row} progress", "value") >= 1, "its progress bar to move")
        assert page.locator(f"{row} td").nth(2).text_content() == site.user
        readme_screenshot(page, "jobs.png")

        page.click('.nav a[data-nav="cluster"]')
        page.wait_for_url(re.compile(r"/ui/cluster$"))
        worker_row = page.locator(f'#workers-body tr[data-worker="{worker.name}"]')
        shown(lambda: worker_row.count(), "the worker on the cluster page")
        assert worker_row.locator("td").nth(1).text_content() == socket.gethostname()
        shown(lambda: worker_row.locator(f'a[title="{job_id}"]').count(), "the job on its worker")
        readme_screenshot(page, "cluster.png")
        page.click(f'#running-body tr[data-job-id="{job_id}"] a')

        page.wait_for_url(re.compile(re.escape(f"/ui/jobs/{job_id}") + "$"))
        shown(lambda: page_state(page)["status"] == "running", "the job page, running")
        messages: list[str] = []

        def accept(dialog: Dialog) -> None:
            messages.append(dialog.message)
            dialog.accept()

        page.once("dialog", accept)
        page.click("#cancel")
        shown(lambda: page_state(page)["status"] == "cancelled", "the job cancelled")
        assert messages and "long-run" in messages[0]
        assert page.locator("#cancel").is_hidden()
    assert site.job(job_id)["status"] == "cancelled"


def test_compare_two_finished_jobs(
    browsing: Browsing, site: Site, finished: tuple[str, str]
) -> None:
    with browsing as page:
        log_in(page, site.token, f"/ui/?owner={site.user}")
        page.fill("#filter-name", "lr-")
        page.click("#filters button[type=submit]")
        ticks = [f'#jobs-body tr[data-job-id="{job_id}"] input.pick' for job_id in finished]

        def only_named_lr() -> bool:
            names = page.locator("#jobs-body td.name").all_text_contents()
            return all("lr-" in name for name in names)

        # The list is filtered at its next poll: both jobs, and no job named otherwise.
        shown(
            lambda: all(page.locator(tick).count() for tick in ticks) and only_named_lr(),
            "the list of jobs named lr-*",
        )
        for tick in ticks:
            page.check(tick)
        page.click("#compare-selected")

        page.wait_for_url(re.compile(r"/ui/compare\?ids="))
        shown(lambda: number(page, "#compare-chart", "data-points") == 4, "both curves")
        assert attribute(page, "#compare-chart", "data-series") == "2"
        assert page.locator("#compare-chart .u-legend .u-series").count() == 3  # x + 2 jobs
        differs = page.locator('#diff-body tr[data-key="learning_rate"] td')
        assert sorted(differs.all_text_contents()) == ["0.001", "0.01"]
        assert page.locator('#diff-body tr[data-key="epochs"]').count() == 0  # the same
        finals = page.locator('#final-body tr[data-key="final_loss"] td').all_text_contents()
        assert len(finals) == 2 and all(float(value) > 0 for value in finals), finals
        readme_screenshot(page, "compare.png")

        # The compare page's own picker, without ids.
        page.click("#compare-again")
        picks = [f'#pick-body tr[data-job-id="{job_id}"] input.pick' for job_id in finished]
        shown(lambda: all(page.locator(pick).count() for pick in picks), "the picker")
        assert page.locator("#compared").is_hidden()
        for pick in picks:
            page.check(pick)
        page.click("#pick-compare")
        page.wait_for_url(re.compile(r"/ui/compare\?ids="))
        shown(lambda: attribute(page, "#compare-chart", "data-series") == "2", "both again")


def test_log_lines_holding_html_are_shown_as_text(browsing: Browsing, site: Site) -> None:
    script = f"print({XSS!r}); print('second line')"
    job_id = site.submit(name="prints-html", epochs=1, command=[sys.executable, "-c", script])
    assert site.wait_for(job_id, *FINAL)["status"] == "succeeded"
    with browsing as page:
        log_in(page, site.token, f"/ui/jobs/{job_id}")
        console = page.locator("#console")
        shown(lambda: XSS in (console.text_content() or ""), "the line, as text")
        assert page.evaluate("window.__xss") is None
        assert console.locator("script, img").count() == 0

        page.fill("#console-search", "second")
        assert console.locator(".line").all_text_contents() == ["second line"]
        assert attribute(page, "#console", "data-shown") == "1"


def test_pages_need_a_session_and_logging_out_ends_it(browsing: Browsing, site: Site) -> None:
    with browsing as page:
        for path in ("/ui/", "/ui/cluster", "/ui/compare?ids=a,b", "/ui/jobs/some-id"):
            page.goto(path)
            page.wait_for_url(re.compile(r"/ui/login\?next="))
            assert page.locator("#login-form").is_visible(), path
        browsing.context.add_cookies(
            [{"name": "trainq_session", "value": "x" * 43, "url": site.url}]
        )
        page.goto("/ui/")
        page.wait_for_url(re.compile(r"/ui/login\?next="))
        page.fill("#token", "not-a-token")
        page.click("#login-submit")
        page.wait_for_url(re.compile(r"/ui/login\?error=1"))
        assert "not accepted" in (page.locator("#login-error").text_content() or "")

        log_in(page, site.token, "/ui/cluster")
        answer = page.goto("/ui/cluster")
        assert answer is not None
        assert "script-src 'self'" in answer.headers["content-security-policy"]
        assert page.locator("#who-user").text_content() == site.user
        page.click("#logout")
        page.wait_for_url(re.compile(r"/ui/login$"))
        page.goto("/ui/")
        page.wait_for_url(re.compile(r"/ui/login\?next="))


def test_pages_redirect_and_static_files_are_served_strictly(site: Site) -> None:
    with httpx.Client(base_url=site.url, timeout=30) as anonymous:
        page = anonymous.get("/ui/jobs/some-id?x=1")
        assert page.status_code == 303
        assert page.headers["location"] == "/ui/login?next=/ui/jobs/some-id%3Fx%3D1"
        login = anonymous.get("/ui/login", params={"next": "https://elsewhere.example/"})
        assert login.status_code == 200
        assert 'name="next" value="/ui/"' in login.text
        assert "frame-ancestors 'none'" in login.headers["content-security-policy"]

        script = anonymous.get("/ui/static/job.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        again = anonymous.get(
            "/ui/static/job.js", headers={"If-None-Match": script.headers["etag"]}
        )
        assert again.status_code == 304
        assert anonymous.get("/ui/static/vendor/uPlot.LICENSE").text.startswith("The MIT License")
        for missing in ("/ui/static/nothing.js", "/ui/static/%2e%2e/routes.py"):
            assert anonymous.get(missing).status_code == 404, missing
