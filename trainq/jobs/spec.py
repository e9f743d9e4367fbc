"""JobSpec: the one validated description of a training job.

It carries the brief's ``TrainingConfig`` fields (``image, epochs, batch_size,
learning_rate, gpu, gpu_ids, timeout, max_retries, log_dir``) and what a real user
also needs (``command, env, gpus, host, cpus, memory, shm_size, name, datasets,
idempotency_key``) and what the scheduler needs (``priority, preemptible``).
``timeout`` is accepted under that name and stored as ``timeout_s``.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from trainq.errors import SpecError

# docker's reference grammar, simplified: [registry[:port]/]path[:tag][@digest]
# A registry prefix has a dot or a port, or is "localhost"; the path is lower case.
_IMAGE_RE = re.compile(
    r"^(?:(?:[a-zA-Z0-9\-]+\.[a-zA-Z0-9.\-]+|localhost)(?::[0-9]+)?/|[a-zA-Z0-9\-]+:[0-9]+/)?"
    r"[a-z0-9]+(?:[._\-/][a-z0-9]+)*"
    r"(?::[\w][\w.\-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
SIZE_PATTERN = r"^[0-9]+[bkmgBKMG]?$"
_SIZE_RE = re.compile(r"^(\d+)([bkmg]?)$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_ENV_PREFIX = "TRAINQ_"
_GPU_IDS_RE = re.compile(r"^\d{1,4}(,\d{1,4})*$")

# The scheduler's priorities, lowest first (trainq.scheduler.policy ranks them).
Priority = Literal["low", "normal", "high"]
PRIORITIES: tuple[Priority, ...] = ("low", "normal", "high")

Host = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,252}$")]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")]


def parse_size(value: str) -> int:
    """Bytes in a Docker-style size such as ``512m`` or ``4g``."""
    match = _SIZE_RE.match(value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not a size like 512m or 4g")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]


def parse_ids(text: str) -> list[int]:
    """GPU ids as ``--gpus``/``--gpu-ids`` spell them: ``"2,3"`` → ``[2, 3]``; ValueError
    naming the rule otherwise."""
    cleaned = text.replace(" ", "")
    if not _GPU_IDS_RE.match(cleaned):
        raise ValueError(f"{text!r} is not a comma-separated list of GPU ids such as 0 or 2,3")
    ids = [int(part) for part in cleaned.split(",")]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicated GPU ids in {text!r}")
    return ids


class JobSpec(BaseModel):
    """What to run, with what resources, and how hard to try."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    image: str | None = Field(
        default=None, max_length=255, description="Image; default from settings"
    )
    epochs: int = Field(default=10, ge=1, le=100_000, strict=True)
    batch_size: int = Field(default=32, ge=1, le=65_536, strict=True)
    learning_rate: float = Field(default=1e-3, gt=0, le=10, strict=True, allow_inf_nan=False)
    gpu: bool = Field(default=False, strict=True)
    gpu_ids: list[Annotated[int, Field(ge=0, le=1023, strict=True)]] = Field(
        default_factory=list, max_length=64
    )
    gpus: int = Field(default=0, ge=0, le=64, strict=True)
    host: Host | None = Field(
        default=None, description="Run on this host's workers; GPU ids are this host's"
    )
    timeout_s: int | None = Field(
        default=None,
        ge=1,
        strict=True,
        validation_alias=AliasChoices("timeout_s", "timeout"),
        description="Time limit in seconds; default from settings",
    )
    max_retries: int = Field(default=3, ge=0, le=10, strict=True)
    log_dir: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Relative folder under the log directory",
    )
    command: list[Annotated[str, StringConstraints(min_length=1)]] | None = Field(
        default=None, min_length=1, max_length=1024
    )
    env: dict[str, str] = Field(default_factory=dict, max_length=256)
    cpus: float | None = Field(default=None, gt=0, le=1024, strict=True, allow_inf_nan=False)
    memory: str | None = Field(
        default=None,
        json_schema_extra={"pattern": SIZE_PATTERN},
        description="Memory limit, e.g. 4g",
    )
    shm_size: str | None = Field(
        default=None,
        json_schema_extra={"pattern": SIZE_PATTERN},
        description="/dev/shm size, e.g. 1g",
    )
    name: Name | None = None
    datasets: list[Name] = Field(
        default_factory=list,
        max_length=32,
        description="Datasets by name (TRAINQ_DATASETS), mounted read-only at /data/<name>",
    )
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255)
    priority: Priority = Field(
        default="normal",
        description="low | normal | high: the scheduler admits higher first (trainq.scheduler)",
    )
    preemptible: bool = Field(
        default=True,
        strict=True,
        description="Whether a higher-priority job may make it yield (only admins set false)",
    )

    @field_validator("epochs", "batch_size", "gpus", "timeout_s", "max_retries", mode="before")
    @classmethod
    def _whole_number(cls, value: Any) -> Any:
        """JSON Schema's integer: 2.0 is 2 (still no strings, no booleans, no 2.5)."""
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    @field_validator("gpu_ids", mode="before")
    @classmethod
    def _whole_numbers(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [cls._whole_number(item) for item in value]
        return value

    @field_validator("image")
    @classmethod
    def _image_reference(cls, value: str | None) -> str | None:
        if value is not None and not _IMAGE_RE.match(value):
            raise ValueError(f"{value!r} is not a valid image reference (e.g. repo/name:tag)")
        return value

    @field_validator("memory", "shm_size")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None and parse_size(value) < 4 * 1024**2:
            raise ValueError("must be at least 4m")
        return value

    @field_validator("log_dir")
    @classmethod
    def _relative_dir(cls, value: str | None) -> str | None:
        if value is None:
            return None
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts or not path.parts:
            raise ValueError("must be a relative path inside the log directory, without '..'")
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _ENV_NAME_RE.match(key):
                raise ValueError(f"{key!r} is not a valid environment variable name")
            if key.upper().startswith(RESERVED_ENV_PREFIX):
                raise ValueError(
                    f"{key!r}: names starting with {RESERVED_ENV_PREFIX} are set by trainq"
                )
        return value

    @field_validator("gpu_ids")
    @classmethod
    def _unique_ids(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError(f"duplicated GPU ids in {value}")
        return value

    @model_validator(mode="after")
    def _gpu_consistency(self) -> Self:
        if not self.gpu and (self.gpu_ids or self.gpus):
            raise ValueError("gpu is false but gpu_ids or gpus asks for GPUs; set gpu=true")
        if self.gpu_ids and self.gpus and self.gpus != len(self.gpu_ids):
            raise ValueError(f"gpus={self.gpus} does not match {len(self.gpu_ids)} gpu_ids")
        return self

    @property
    def gpu_count(self) -> int:
        """How many GPUs the job needs: ``gpu=true`` alone means one."""
        if not self.gpu:
            return 0
        return len(self.gpu_ids) or self.gpus or 1

    @property
    def memory_bytes(self) -> int | None:
        return None if self.memory is None else parse_size(self.memory)

    @property
    def shm_size_bytes(self) -> int | None:
        return None if self.shm_size is None else parse_size(self.shm_size)

    @classmethod
    def parse(cls, data: dict[str, Any]) -> JobSpec:
        """Validate ``data``; raise :class:`SpecError` naming each bad field and rule."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise SpecError(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    """One line per problem: ``field: rule (got value)``."""
    lines = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "spec"
        got = "" if error["type"] == "missing" else f" (got {error['input']!r})"
        if error["type"] == "extra_forbidden":
            lines.append(f"{field}: unknown field")
        else:
            lines.append(f"{field}: {error['msg']}{got}")
    return "invalid job spec: " + "; ".join(lines)
