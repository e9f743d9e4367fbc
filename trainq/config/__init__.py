"""trainq's one Settings object: the only place that reads the environment.

Every process (worker, CLI, Flower, API) builds its Celery configuration from
:func:`get_settings`, so broker options such as ``visibility_timeout`` and the key
prefix are identical everywhere. Each variable is ``TRAINQ_`` + the field name in
upper case, e.g. ``TRAINQ_REDIS_URL``.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
import sys
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, computed_field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from trainq.config.redis_urls import celery_url, sentinel_addresses
from trainq.errors import ConfigError

# The repository root holds train.py next to the package in a source checkout.
_REPO_ROOT = Path(__file__).resolve().parents[2]

RuntimeName = Literal["docker", "process"]
# A user name (job owner): letters, digits and "_.@-", starting with a letter or digit.
USER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,63}$"
_DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class Settings(BaseSettings):
    """Configuration of every trainq process; see README "Configuration"."""

    model_config = SettingsConfigDict(env_prefix="TRAINQ_", extra="ignore", frozen=True)

    redis_url: str = "redis://localhost:6379/0"
    # Redis Sentinel (high availability): with sentinels set ("host:port,host:port"),
    # every process finds the primary through them under redis_master_name, and
    # redis_url only names the database. The passwords: Redis's own (requirepass, on the
    # primary and replicas; else the one in redis_url) and the sentinels'.
    redis_sentinels: str = ""
    redis_master_name: str = Field(default="trainq", pattern=r"^[A-Za-z0-9_.\-]+$")
    redis_password: SecretStr = SecretStr("")
    redis_sentinel_password: SecretStr = SecretStr("")
    # Submit returns once the new job is on the primary and on this many replicas
    # (WAIT, up to redis_wait_s); else it fails and the job is not accepted. Empty: 1
    # with sentinels, 0 (no wait) without.
    redis_min_replicas: int | None = Field(default=None, ge=0, le=16)
    redis_wait_s: float = Field(default=1.0, gt=0, le=60)
    key_prefix: str = Field(default="trainq:", pattern=r"^[A-Za-z0-9_.\-]+:$")
    log_dir: Path = Path("logs")
    checkpoint_dir: Path = Path("checkpoints")
    # Each attempt's output directory (/outputs in a container): <output_dir>/<job>/<attempt>.
    output_dir: Path = Path("outputs")
    # The artifact store (fsspec URL): checkpoints, outputs and archived logs of every job
    # under <url>/jobs/<job_id>/. Default: the local folder "artifacts" (one host); on a
    # cluster a shared mount (file:///mnt/shared/trainq) or a bucket (s3://bucket/prefix).
    artifact_url: str = ""
    # S3-compatible stores: endpoint (empty: AWS), region and credentials (empty: s3fs's
    # own lookup, e.g. an instance role).
    artifact_s3_endpoint_url: str = ""
    artifact_s3_region: str = ""
    artifact_s3_access_key_id: SecretStr = SecretStr("")
    artifact_s3_secret_access_key: SecretStr = SecretStr("")
    # Checkpoint sync: at most one upload pass per this many seconds while a job runs.
    artifact_sync_interval_s: float = Field(default=2.0, ge=0)
    # How long one store operation may take before it counts as failed.
    artifact_timeout_s: float = Field(default=30.0, gt=0)
    # Artifacts of finished jobs are deleted after this many days (empty: kept forever).
    artifact_retention_days: float | None = Field(default=None, gt=0)
    # Datasets a job may ask for by name, mounted read-only at /data/<name>:
    # "name=/host/path,name2=/other/path". No other host path is ever mounted.
    datasets: str = ""
    default_image: str = "trainq-train:latest"
    service_image: str = "trainq:latest"
    redis_image: str = "trainq-redis:latest"  # docker-compose.yml's Redis
    # `make image` builds FROM the registry base when a registry answers, else FROM a
    # base made locally with debootstrap and tagged offline_base_image.
    registry_base_image: str = "python:3.11-slim-bookworm"
    offline_base_image: str = "trainq-base:bookworm"
    runtime: RuntimeName = "docker"
    # The longest any job may run; the broker's visibility timeout sits above it.
    max_job_s: int = Field(default=86_400, ge=60)
    visibility_margin_s: int = Field(default=3_600, ge=60)
    default_timeout_s: int = Field(default=3_600, ge=1)
    stop_grace_s: float = Field(default=10.0, ge=0)
    # Supervision: a supervisor renews its lease every third of lease_ttl_s; a job whose
    # lease expired is re-queued by the next reconcile pass of any worker.
    lease_ttl_s: float = Field(default=15.0, gt=0.5)
    reconcile_interval_s: float = Field(default=10.0, gt=0)
    # A supervisor whose runtime does not answer (a Docker engine restarting) before
    # it found or started the job's attempt waits this long for it, lease held.
    runtime_patience_s: float = Field(default=120.0, ge=0)
    watch_interval_s: float = Field(default=0.5, gt=0)
    retry_backoff_s: float = Field(default=2.0, ge=0)
    retry_backoff_max_s: float = Field(default=60.0, ge=0)
    # Job logs: <log_dir>/jobs/<job_id>.log (JSON lines) and a capped Redis stream.
    job_log_max_bytes: int = Field(default=2 * 1024**3, ge=1024)
    log_stream_max_lines: int = Field(default=200_000, ge=100)
    log_retention_days: float = Field(default=14, gt=0)
    output_tail_lines: int = Field(default=40, ge=1, le=10_000)
    # Supervising must never slow the job: the worker runs at this niceness (0-19),
    # below the containers and processes it watches.
    worker_nice: int = Field(default=10, ge=0, le=19)
    worker_concurrency: int = Field(default=1, ge=1, le=64)
    # Containers: limits and log caps of every job container.
    container_pids_limit: int = Field(default=4096, ge=16)
    # uid:gid of every job container; never root (uid 0).
    container_user: str = Field(default="1000:1000", pattern=r"^[1-9][0-9]*(:[0-9]+)?$")
    container_log_max_size: str = Field(default="50m", pattern=r"^[0-9]+[kmg]$")
    container_log_max_files: int = Field(default=3, ge=1, le=100)
    # Hardening every job container gets: all capabilities dropped, no-new-privileges,
    # a non-root user, these limits, the default bridge network, never the Docker
    # socket. A job's own cpus/memory may only be lower.
    container_memory: str = Field(default="8g", pattern=r"^[0-9]+[kmg]$")
    container_cpus: float = Field(default=float(os.cpu_count() or 1), gt=0, le=1024)
    # Images a job may name, as shell patterns (comma-separated) besides default_image.
    allowed_images: str = "trainq-train:*"
    # The REST API: bearer tokens (comma-separated). Without one the API refuses to
    # start unless dev_mode is set, which also opens Flower without a password.
    api_tokens: SecretStr = SecretStr("")
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65_535)
    api_max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    api_workers: int = Field(default=2, ge=1, le=64)
    # Users: who may see which jobs through the API ("all": every user sees every job;
    # "owner": a user sees only their own, an admin all), the cap on a user's queued
    # jobs (0: none), and the API's request rate per token (per client address without
    # one) with its burst.
    jobs_visible: Literal["all", "owner"] = "all"
    max_queued_per_user: int = Field(default=0, ge=0)
    api_rate_per_s: float = Field(default=50.0, ge=0)  # 0: no limit
    api_rate_burst: int = Field(default=100, ge=1)
    # The audit trail: every state-changing call, as JSON lines in
    # <log_dir>/TrainingAudit_YYYYMMDD.log and a capped Redis stream (GET /audit).
    audit_stream_max_entries: int = Field(default=100_000, ge=100)
    # Who submits from this process when it talks to Redis directly (Python, the CLI):
    # TRAINQ_USER, else the login name. Through the API the token's user is the owner.
    user: str = Field(default_factory=lambda: _login_name(), pattern=USER_NAME_PATTERN)
    # The remote CLI: with api_url set (or saved by `trainq login`), job commands go
    # over the REST API with this token instead of to Redis.
    api_url: str = ""
    token: SecretStr = SecretStr("")
    # Where `trainq login` keeps the API URL and token (mode 0600).
    config_dir: Path = Field(default_factory=lambda: _config_home() / "trainq")
    # How long the remote CLI waits for one API answer before it says the API is down.
    api_timeout_s: float = Field(default=10.0, gt=0)
    # The scheduler (trainq.scheduler): "fair" admits pending jobs by priority, fair share
    # and age, within each user's quota, preempting lower-priority work; "fifo" sends each
    # job to its queue at submit (first come, first served).
    scheduler: Literal["fair", "fifo"] = "fair"
    # Fair share: usage is GPU-seconds (plus CPU-seconds times the CPU weight), halved
    # every half-life (Slurm's default: 7 days).
    fairshare_half_life_h: float = Field(default=168.0, gt=0)
    fairshare_cpu_weight: float = Field(default=0.1, ge=0)
    # The highest priority a user may give a job unless an admin allows more.
    default_max_priority: Literal["low", "normal", "high"] = "normal"
    # Preemption: a job pending this long, whose workers are all busy with lower-priority
    # work that has run at least preempt_min_run_s, makes the lowest such job yield (it
    # checkpoints and is pending again); a job yields at most preempt_max times (0: never).
    preempt_after_s: float = Field(default=300.0, ge=0)
    preempt_min_run_s: float = Field(default=600.0, ge=0)
    preempt_max: int = Field(default=3, ge=0)
    # Admission runs in whichever worker holds this lease; a pass also runs every
    # scheduler_interval_s besides the events that wake it.
    scheduler_lease_ttl_s: float = Field(default=10.0, gt=1)
    scheduler_interval_s: float = Field(default=5.0, gt=0)
    # The web page (/ui): how long a login session lasts (its cookie expires with it).
    ui_session_ttl_s: float = Field(default=8 * 3600.0, ge=10)
    # Each job's metric series (every numeric field of its progress lines, for the
    # page's curves): about this many points are kept, with the job's log stream.
    metric_series_max_points: int = Field(default=10_000, ge=100)
    metrics_public: bool = False
    dev_mode: bool = False
    # Flower: "user:password" (comma-separated pairs); required unless dev_mode.
    flower_basic_auth: SecretStr = SecretStr("")
    flower_port: int = Field(default=5555, ge=1, le=65_535)
    # A testing aid: accept GPU ids without NVIDIA devices or NVML; jobs get the
    # visible-devices variables but no device request is made.
    simulate_gpus: bool = False
    # Each worker heartbeats its entry in the live-worker registry every third of this.
    worker_ttl_s: float = Field(default=30.0, ge=1)
    # How the process runtime starts the standard train.py.
    process_python: str = sys.executable
    train_script: Path = _REPO_ROOT / "train.py"
    result_expires_s: int = Field(default=7 * 86_400, ge=60)
    # The CPU queue; GPU queues are named by trainq.routing.
    # Celery task-sent events (Flower's "sent" state): off, they slow every submit.
    task_sent_events: bool = False
    queue: str = Field(default="cpu", pattern=r"^[A-Za-z0-9_.\-]+$")
    # This host's name in queue names and records (GPU ids are host-local).
    hostname: str = Field(default=socket.gethostname(), pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinels_are_addresses(cls, value: str) -> str:
        try:
            sentinel_addresses(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @computed_field  # type: ignore[prop-decorator]
    @property
    def visibility_timeout_s(self) -> int:
        """Broker redelivery timeout: longer than the longest allowed job."""
        return self.max_job_s + self.visibility_margin_s

    @property
    def sentinel_addresses(self) -> tuple[tuple[str, int], ...]:
        """``(host, port)`` of each sentinel."""
        return sentinel_addresses(self.redis_sentinels)

    @property
    def min_replicas(self) -> int:
        """How many replicas must hold a new job before submit returns."""
        if self.redis_min_replicas is not None:
            return self.redis_min_replicas
        return 1 if self.redis_sentinels.strip() else 0

    @property
    def celery_redis_url(self) -> str:
        """The broker and result backend URL: redis_url (with redis_password), or one
        ``sentinel://`` URL per sentinel; the master name goes in transport options."""
        password = self.redis_password.get_secret_value()
        return celery_url(self.redis_url, self.sentinel_addresses, password)

    @property
    def artifact_location(self) -> str:
        """The artifact store's URL: ``artifact_url``, else the local "artifacts" folder."""
        return self.artifact_url or Path("artifacts").absolute().as_uri()

    @property
    def dataset_paths(self) -> dict[str, Path]:
        """The declared datasets by name; ConfigError naming the entry when malformed."""
        found: dict[str, Path] = {}
        for entry in _split(self.datasets):
            name, sep, path = entry.partition("=")
            name, path = name.strip(), path.strip()
            if not sep or not _DATASET_NAME.match(name) or not path.startswith("/"):
                raise ConfigError(
                    f"TRAINQ_DATASETS: {entry!r} is not name=/absolute/host/path "
                    "(name: letters, digits, '_', '-', '.')"
                )
            found[name] = Path(path)
        return found

    @property
    def job_log_dir(self) -> Path:
        return self.log_dir / "jobs"

    @property
    def image_patterns(self) -> list[str]:
        """What an image may match: default_image and the allowed_images patterns."""
        extra = [p.strip() for p in self.allowed_images.split(",") if p.strip()]
        return [self.default_image, *extra]

    @property
    def api_token_list(self) -> list[str]:
        return _split(self.api_tokens.get_secret_value())

    @property
    def flower_auth_list(self) -> list[str]:
        return _split(self.flower_basic_auth.get_secret_value())


def _login_name() -> str:
    """The login name, made a valid user name; "unknown" where there is none."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's bare uid)
        return "unknown"
    cleaned = re.sub(r"[^A-Za-z0-9_.@\-]", "-", name).lstrip("_.@-")[:64]
    return cleaned or "unknown"


def _config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()


def inherited_env() -> dict[str, str]:
    """The worker's environment minus trainq's own settings, for local job processes."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TRAINQ_")}
