"""JobSpec.parse: the defaults, every refusal (naming field and rule), and round-trips."""

from __future__ import annotations

import math
from typing import Any

import pytest

from trainq.errors import SpecError
from trainq.jobs.spec import JobSpec


def _refusal(data: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as caught:
        JobSpec.parse(data)
    return str(caught.value)


def test_defaults_are_valid() -> None:
    spec = JobSpec.parse({})

    assert spec.epochs >= 1
    assert spec.batch_size >= 1
    assert 0 < spec.learning_rate <= 10
    assert spec.gpu is False
    assert spec.gpu_ids == []
    assert spec.gpus == 0
    assert spec.timeout_s is None
    assert spec.memory_bytes is None
    assert spec.shm_size_bytes is None


def test_spec_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="epochs"):
        JobSpec.parse({"epochs": -1})


def test_whole_floats_are_integers_as_in_json_schema() -> None:
    spec = JobSpec.parse({"epochs": 5.0, "gpu": True, "gpu_ids": [1.0]})

    assert spec.epochs == 5 and isinstance(spec.epochs, int)
    assert spec.gpu_ids == [1] and isinstance(spec.gpu_ids[0], int)


@pytest.mark.parametrize(
    ("data", "field", "rule"),
    [
        ({"epochs": -1}, "epochs", "greater than or equal to 1"),
        ({"epochs": 0}, "epochs", "greater than or equal to 1"),
        ({"epochs": "5"}, "epochs", "valid integer"),
        ({"epochs": 5.5}, "epochs", "valid integer"),
        ({"epochs": True}, "epochs", "valid integer"),
        ({"batch_size": 0}, "batch_size", "greater than or equal to 1"),
        ({"learning_rate": 0}, "learning_rate", "greater than 0"),
        ({"learning_rate": -1}, "learning_rate", "greater than 0"),
        ({"learning_rate": float("inf")}, "learning_rate", "finite number"),
        ({"gpus": -1, "gpu": True}, "gpus", "greater than or equal to 0"),
        ({"gpu": True, "gpu_ids": [1, 1]}, "gpu_ids", "duplicated GPU ids"),
        ({"gpu": True, "gpu_ids": [-1]}, "gpu_ids.0", "greater than or equal to 0"),
        ({"gpu": True, "gpu_ids": [True]}, "gpu_ids.0", "valid integer"),
        ({"gpu": False, "gpu_ids": [0]}, "gpu", "gpu is false"),
        ({"gpu": False, "gpus": 1}, "gpu", "gpu is false"),
        ({"gpu": True, "gpus": 2, "gpu_ids": [0]}, "gpus=2", "does not match"),
        ({"env": {"TRAINQ_X": "1"}}, "TRAINQ_X", "set by trainq"),
        ({"env": {"trainq_x": "1"}}, "trainq_x", "set by trainq"),
        ({"env": {"1BAD": "1"}}, "1BAD", "not a valid environment variable name"),
        ({"memory": "lots"}, "memory", "not a size"),
        ({"memory": "1k"}, "memory", "at least 4m"),
        ({"shm_size": "1m"}, "shm_size", "at least 4m"),
        ({"log_dir": "/abs"}, "log_dir", "relative path"),
        ({"log_dir": "../up"}, "log_dir", "relative path"),
        ({"log_dir": "team/../../up"}, "log_dir", "relative path"),
        ({"image": "Bad Image!"}, "image", "not a valid image reference"),
        ({"command": []}, "command", "at least 1 item"),
        ({"command": ["python", ""]}, "command.1", "at least 1 character"),
        ({"timeout": 0}, "timeout", "greater than or equal to 1"),
        ({"timeout": "30"}, "timeout", "valid integer"),
        ({"max_retries": 11}, "max_retries", "less than or equal to 10"),
        ({"name": "-starts-with-dash"}, "name", "pattern"),
    ],
)
def test_bad_input_names_field_and_rule(data: dict[str, Any], field: str, rule: str) -> None:
    message = _refusal(data)

    assert message.startswith("invalid job spec:")
    assert field in message
    assert rule in message


def test_nan_learning_rate_is_refused() -> None:
    message = _refusal({"learning_rate": float("nan")})

    assert "learning_rate" in message
    assert "nan" in message


def test_nan_learning_rate_message_names_the_finite_rule() -> None:
    message = _refusal({"learning_rate": float("nan")})

    assert "finite" in message


def test_unknown_field_is_named() -> None:
    message = _refusal({"epoch": 3})

    assert "epoch: unknown field" in message


def test_several_errors_are_all_named_in_one_message() -> None:
    message = _refusal({"epochs": 0, "batch_size": 0, "learning_rate": -1, "epoch": 1})

    for field in ("epochs:", "batch_size:", "learning_rate:", "epoch: unknown field"):
        assert field in message
    assert message.count(";") == 3


def test_memory_size_is_parsed_to_bytes() -> None:
    spec = JobSpec.parse({"memory": "512m", "shm_size": "1G"})

    assert spec.memory == "512m"
    assert spec.memory_bytes == 512 * 1024**2
    assert spec.shm_size_bytes == 1024**3


@pytest.mark.parametrize("log_dir", ["team/a", "team", "a/b/c"])
def test_relative_log_dir_is_accepted(log_dir: str) -> None:
    assert JobSpec.parse({"log_dir": log_dir}).log_dir == log_dir


@pytest.mark.parametrize(
    "image",
    [
        "repo/name:tag",
        "localhost:5000/x/y:1.0",
        "python:3.11-slim",
        "ghcr.io/org/train@sha256:" + "a" * 64,
    ],
)
def test_valid_image_references_are_accepted(image: str) -> None:
    assert JobSpec.parse({"image": image}).image == image


def test_command_is_kept() -> None:
    assert JobSpec.parse({"command": ["python", "x.py"]}).command == ["python", "x.py"]


def test_timeout_alias_is_stored_as_timeout_s() -> None:
    assert JobSpec.parse({"timeout": 30}).timeout_s == 30
    assert JobSpec.parse({"timeout_s": 45}).timeout_s == 45


def test_gpu_request_is_accepted_when_consistent() -> None:
    spec = JobSpec.parse({"gpu": True, "gpu_ids": [0, 2], "gpus": 2})

    assert spec.gpu_ids == [0, 2]
    assert spec.gpus == 2


def test_valid_env_is_kept() -> None:
    assert JobSpec.parse({"env": {"_A": "1", "HF_HOME": "/x"}}).env == {"_A": "1", "HF_HOME": "/x"}


def test_spec_is_frozen() -> None:
    spec = JobSpec.parse({})

    with pytest.raises(ValueError, match="frozen"):
        spec.epochs = 3  # type: ignore[misc]


def test_json_dump_round_trips_through_parse() -> None:
    spec = JobSpec.parse(
        {
            "image": "localhost:5000/x/y:1.0",
            "epochs": 3,
            "batch_size": 8,
            "learning_rate": 0.05,
            "gpu": True,
            "gpu_ids": [0, 1],
            "gpus": 2,
            "timeout": 30,
            "max_retries": 1,
            "log_dir": "team/a",
            "command": ["python", "x.py"],
            "env": {"SEED": "7"},
            "cpus": 1.5,
            "memory": "512m",
            "shm_size": "64m",
            "name": "run-1",
            "idempotency_key": "k-1",
        }
    )

    again = JobSpec.parse(spec.model_dump(mode="json"))

    assert again == spec
    assert again.timeout_s == 30
    assert math.isclose(again.learning_rate, 0.05)


def test_host_names_a_host() -> None:
    assert JobSpec.parse({"host": "gpu-box.lab"}).host == "gpu-box.lab"
    with pytest.raises(SpecError, match="host: String should match pattern"):
        JobSpec.parse({"host": "gpu box"})


@pytest.mark.parametrize(
    ("fields", "count"),
    [
        ({}, 0),
        ({"gpu": True}, 1),
        ({"gpu": True, "gpus": 3}, 3),
        ({"gpu": True, "gpu_ids": [4, 5]}, 2),
    ],
)
def test_gpu_count(fields: dict[str, object], count: int) -> None:
    assert JobSpec.parse(fields).gpu_count == count
