"""Datasets in, an output directory per attempt: the checks at submit and launch, the
variables and mounts the runtimes give, the CLI and API surface, the model in results."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from trainq import client
from trainq.api.app import create_app
from trainq.cli.app import cli
from trainq.config import Settings
from trainq.errors import ConfigError, LaunchRefused, SpecError
from trainq.jobs.policy import with_defaults
from trainq.jobs.record import Attempt, JobRecord
from trainq.jobs.spec import JobSpec
from trainq.runtime.base import Exit, Launch, dataset_var
from trainq.runtime.container_mounts import container_env, mounts
from trainq.runtime.process import ProcessRuntime
from trainq.worker import attempts
from trainq.worker.devices import Gpus


@pytest.fixture
def declared(tmp_path: Path) -> Settings:
    (tmp_path / "imagenet").mkdir()
    (tmp_path / "text-8").mkdir()
    return Settings(
        datasets=f"imagenet={tmp_path / 'imagenet'}, text-8={tmp_path / 'text-8'}",
        output_dir=tmp_path / "outputs",
        checkpoint_dir=tmp_path / "checkpoints",
    )


def test_declared_datasets_are_accepted_at_submit(declared: Settings) -> None:
    spec = with_defaults(JobSpec.parse({"datasets": ["text-8", "imagenet"]}), declared)
    assert spec.datasets == ["text-8", "imagenet"]


@pytest.mark.parametrize(
    ("datasets", "declared_list"),
    [("imagenet=/d/imagenet,text-8=/d/text", "declared: imagenet, text-8"), ("", "none declared")],
)
def test_an_undeclared_dataset_is_refused_naming_the_declared_ones(
    datasets: str, declared_list: str
) -> None:
    settings = Settings(datasets=datasets)
    with pytest.raises(SpecError) as refused:
        with_defaults(JobSpec.parse({"datasets": ["secret"]}), settings)
    assert str(refused.value) == (
        "invalid job spec: datasets: 'secret' is not a dataset of this cluster "
        f"({declared_list}; setting TRAINQ_DATASETS)"
    )


def test_a_dataset_asked_for_twice_is_refused(declared: Settings) -> None:
    with pytest.raises(SpecError, match="datasets: 'imagenet' is listed twice"):
        with_defaults(JobSpec.parse({"datasets": ["imagenet", "imagenet"]}), declared)


@pytest.mark.parametrize(
    "entry", ["imagenet", "imagenet=relative/path", "=/abs", "bad name=/abs", "-x=/abs"]
)
def test_a_malformed_declaration_is_a_config_error_naming_it(entry: str) -> None:
    settings = Settings(datasets=f"good=/data/good,{entry}")
    with pytest.raises(ConfigError, match=repr(entry)):
        _ = settings.dataset_paths


def record_of(spec: dict[str, Any], attempt: int = 1) -> JobRecord:
    opened = [Attempt(number=n) for n in range(1, attempt + 1)]
    return JobRecord(id="job-d", spec=JobSpec.parse(spec), attempts=opened)


def test_launch_has_an_output_dir_per_attempt_and_the_datasets(
    declared: Settings, tmp_path: Path
) -> None:
    record = record_of({"datasets": ["imagenet"]}, attempt=2)
    launch = attempts.launch_of(record, 2, declared, "w@h", Gpus(()))

    assert launch.output_dir == tmp_path / "outputs" / "job-d" / "2"
    assert launch.output_dir.is_absolute()
    assert launch.datasets == {"imagenet": tmp_path / "imagenet"}
    plain = attempts.launch_of(record_of({}), 1, declared, "w@h", Gpus(()))
    assert plain.datasets == {}


def test_a_dataset_missing_on_this_host_refuses_the_launch(
    declared: Settings, tmp_path: Path
) -> None:
    (tmp_path / "text-8").rmdir()
    record = record_of({"datasets": ["imagenet", "text-8"]})
    with pytest.raises(LaunchRefused, match=f"'text-8'.*{tmp_path / 'text-8'}"):
        attempts.launch_of(record, 1, declared, "w@h", Gpus(()))

    elsewhere = Settings(datasets=f"imagenet={tmp_path / 'imagenet'}")
    with pytest.raises(LaunchRefused, match="'text-8' is not declared on this worker"):
        attempts.launch_of(record, 1, elsewhere, "w@h", Gpus(()))


@pytest.mark.parametrize(
    ("reported", "artifact"),
    [
        ("/outputs/model.pt", "outputs/model.pt"),
        ("/outputs/final/model.pt", "outputs/final/model.pt"),
        ("{outputs}/model.pt", "outputs/model.pt"),
        ("/elsewhere/model.pt", "outputs/model.pt"),
    ],
)
def test_the_result_names_the_model_as_an_artifact(
    declared: Settings, reported: str, artifact: str
) -> None:
    record = record_of({}, attempt=3)
    outputs = attempts.output_dir(declared, "job-d", 3)
    values = {"model": reported.format(outputs=outputs), "checkpoint": "/checkpoints/c.pt"}

    result = attempts.result_of(record, values, [], declared)

    assert result["model"] == artifact
    assert result["checkpoint_path"] == str(declared.checkpoint_dir.absolute() / "job-d" / "c.pt")
    assert "model" not in attempts.result_of(record, {}, [], declared)


def test_dataset_variables_are_upper_case_with_underscores() -> None:
    assert dataset_var("imagenet") == "TRAINQ_DATASET_IMAGENET"
    assert dataset_var("text-8.v2") == "TRAINQ_DATASET_TEXT_8_V2"


def launch(tmp_path: Path, **changes: Any) -> Launch:
    values: dict[str, Any] = {
        "job_id": "job-d",
        "attempt": 1,
        "image": "unused",
        "command": None,
        "env": {},
        "checkpoint_dir": tmp_path / "ck",
        "worker": "w",
        "output_dir": tmp_path / "out" / "job-d" / "1",
        "datasets": {"imagenet": tmp_path / "imagenet", "text-8": tmp_path / "text-8"},
        **changes,
    }
    return Launch(**values)


def test_a_container_sees_mounts_not_host_paths(tmp_path: Path) -> None:
    given = launch(tmp_path)

    env = container_env(given)
    found = {m["Target"]: m for m in mounts(given, "1000:1000")}

    assert env["TRAINQ_OUTPUT_DIR"] == "/outputs"
    assert env["TRAINQ_DATA_DIR"] == "/data"
    assert env["TRAINQ_DATASET_IMAGENET"] == "/data/imagenet"
    assert env["TRAINQ_DATASET_TEXT_8"] == "/data/text-8"
    assert found["/outputs"]["Source"] == str(given.output_dir)
    assert not found["/outputs"]["ReadOnly"]
    assert found["/data/imagenet"] == {
        "Target": "/data/imagenet",
        "Source": str(tmp_path / "imagenet"),
        "Type": "bind",
        "ReadOnly": True,
    }
    assert found["/data/text-8"]["ReadOnly"] is True
    assert set(found) == {"/checkpoints", "/outputs", "/data/imagenet", "/data/text-8"}
    assert given.output_dir is not None and given.output_dir.is_dir()
    assert os.access(given.output_dir, os.W_OK)

    bare = launch(tmp_path, output_dir=None, datasets={})
    assert [m["Target"] for m in mounts(bare, "1000:1000")] == ["/checkpoints"]
    assert not {"TRAINQ_OUTPUT_DIR", "TRAINQ_DATA_DIR"} & set(container_env(bare))


PRINT_DIRS = (
    "import os, pathlib\n"
    "for k in sorted(os.environ):\n"
    "    if k.startswith(('TRAINQ_OUTPUT', 'TRAINQ_DATA')):\n"
    "        print(f'{k}={os.environ[k]}')\n"
    "pathlib.Path(os.environ['TRAINQ_OUTPUT_DIR'], 'made.txt').write_text('hi')\n"
)


def test_a_process_is_handed_host_paths(tmp_path: Path) -> None:
    runtime = ProcessRuntime(
        sys.executable,
        Path("train.py"),
        base_env={"PATH": os.environ["PATH"]},
        stop_grace_s=1,
        spool_dir=tmp_path / "spool",
    )
    given = launch(tmp_path, command=[sys.executable, "-c", PRINT_DIRS])
    handle = runtime.start(given)
    try:
        lines = list(runtime.output(handle))
        assert runtime.wait(handle, 20) == Exit(0)
    finally:
        runtime.remove(handle)

    assert lines == [
        f"TRAINQ_DATASET_IMAGENET={tmp_path / 'imagenet'}",
        f"TRAINQ_DATASET_TEXT_8={tmp_path / 'text-8'}",
        f"TRAINQ_OUTPUT_DIR={given.output_dir}",
    ]  # no TRAINQ_DATA_DIR: there is no one folder of them
    assert given.output_dir is not None
    assert (given.output_dir / "made.txt").read_text() == "hi"


def test_submit_takes_repeated_dataset_options(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[dict[str, Any]] = []

    def refuse_after_recording(values: dict[str, Any]) -> str:
        sent.append(values)
        raise SpecError("stop here")

    monkeypatch.setattr(client, "submit", refuse_after_recording)
    outcome = CliRunner().invoke(cli, ["submit", "--dataset", "imagenet", "--dataset", "text-8"])

    assert outcome.exit_code == 2, outcome.output
    assert sent == [{"datasets": ["imagenet", "text-8"]}]


def test_the_api_takes_datasets_and_documents_them(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[dict[str, Any]] = []

    def record(values: dict[str, Any], *, job_id: str, **_: Any) -> str:
        sent.append(values)
        return job_id

    monkeypatch.setattr(client, "submit", record)
    app = create_app(Settings(api_tokens="", dev_mode=True))
    schema = app.openapi()["components"]["schemas"]["JobSpec"]["properties"]["datasets"]
    assert schema["type"] == "array" and "/data/<name>" in schema["description"]

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            return await http.post("/train", json={"datasets": ["imagenet"]})

    answer = asyncio.run(post())

    assert answer.status_code == 202, answer.text
    assert sent[0]["datasets"] == ["imagenet"]
