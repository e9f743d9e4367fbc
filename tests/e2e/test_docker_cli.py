"""`trainq submit` on a worker with the Docker runtime, watched through `docker ps`."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.harness import BIN, REPO, Worker, trainq_containers, wait_until

pytestmark = pytest.mark.e2e


def test_a_job_runs_in_exactly_one_container_and_none_remains(docker_worker: Worker) -> None:
    submit = subprocess.Popen(
        [str(BIN / "trainq"), "submit", "--epochs", "3", "--wait", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    running = wait_until(trainq_containers, 60, "the job's container to appear")
    assert isinstance(running, list) and len(running) == 1
    labels = subprocess.run(
        ["docker", "inspect", "-f", "{{json .Config.Labels}}", running[0]],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    job_id = json.loads(labels.stdout)["trainq.job_id"]
    seen: set[str] = set()

    def ended() -> bool:
        seen.update(trainq_containers(job_id))
        return submit.poll() is not None

    wait_until(ended, 180, "trainq submit --wait to return", interval_s=0.05)
    out, err = submit.communicate()

    assert submit.returncode == 0, err
    record = json.loads(out)
    assert record["id"] == job_id
    assert record["status"] == "succeeded"
    assert seen == set(running), "more than one container ran for the job"
    (attempt,) = record["attempts"]
    assert attempt["runtime"] == "docker"
    assert attempt["handle"] == running[0]
    assert attempt["image_digest"].startswith("sha256:")
    # Recorded, then removed (the design's order): the removal follows within moments.
    wait_until(lambda: not trainq_containers(job_id), 30, "the ended container's removal")


MY_TRAIN = """
import json, os, sys
assert sys.argv[1:] == ["--foo"], sys.argv
print("user script in", os.environ["TRAINQ_JOB_ID"], "attempt", os.environ["TRAINQ_ATTEMPT"])
open(os.path.join(os.environ["TRAINQ_CHECKPOINT_DIR"], "mine.txt"), "w").write("ok")
for epoch in (1, 2):
    loss = 1.0 / epoch
    print(json.dumps({"trainq": "progress", "epoch": epoch, "epochs": 2, "loss": loss}))
"""


@pytest.fixture(scope="module")
def user_image(docker_engine: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A user's own image (not trainq's), holding my_train.py."""
    from trainq.config import get_settings

    settings = get_settings()
    base = settings.offline_base_image
    if subprocess.run(["docker", "image", "inspect", base], capture_output=True).returncode:
        base = settings.registry_base_image
    context = tmp_path_factory.mktemp("user-image")
    (context / "my_train.py").write_text(MY_TRAIN)
    (context / "Dockerfile").write_text(f"FROM {base}\nWORKDIR /work\nCOPY my_train.py .\n")
    tag = "trainq-test/user-image:latest"
    subprocess.run(["docker", "build", "-q", "-t", tag, str(context)], capture_output=True,
                   check=True)  # fmt: skip
    return tag


def test_custom_image_and_command_get_the_contract_and_progress(
    docker_worker: Worker, user_image: str
) -> None:
    submitted = subprocess.run(
        [str(BIN / "trainq"), "submit", "--image", user_image, "--wait", "--json",
         "--", "python3", "my_train.py", "--foo"],
        capture_output=True, text=True, cwd=REPO, timeout=180,
    )  # fmt: skip

    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    record = json.loads(submitted.stdout)
    assert record["status"] == "succeeded"
    assert record["spec"]["command"] == ["python3", "my_train.py", "--foo"]
    assert record["attempts"][0]["image"] == user_image
    assert (record["progress"]["epoch"], record["progress"]["loss"]) == (2, 0.5)
    assert [m["loss"] for m in record["result"]["metrics"]] == [1.0, 0.5]
    log = (REPO / record["log_path"]).read_text()
    assert f"user script in {record['id']} attempt 1" in log
    checkpoint_dir = REPO / record["result"]["checkpoint_dir"]
    assert (checkpoint_dir / "mine.txt").read_text() == "ok"
