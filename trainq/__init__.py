"""trainq: run AI training jobs in containers through Celery, reliably.

from trainq import submit_training
r = submit_training.delay(epochs=2, batch_size=32, learning_rate=1e-3)
r.get()  # {"final_loss": ..., "metrics": [...], "checkpoint_path": ...}

The package's layers (``docs/architecture.md``): callers (``cli``, ``api``, Python)
→ ``client`` → broker → ``worker`` → ``runtime`` → ``logs`` → ``store``, all built on
the domain in ``jobs``. Importing trainq never loads the worker side.
"""

from trainq.celery_app import app
from trainq.client import cancel, submit_training
from trainq.config import Settings, get_settings
from trainq.errors import (
    AlreadyFinished,
    EnqueueError,
    GpuUnavailable,
    IllegalTransition,
    JobFailed,
    JobNotFound,
    LaunchRefused,
    RuntimeFault,
    SpecError,
    SupervisedElsewhere,
    TrainqError,
)
from trainq.jobs.record import Attempt, JobRecord, Progress
from trainq.jobs.spec import JobSpec
from trainq.jobs.status import JobStatus

__all__ = [
    "AlreadyFinished",
    "Attempt",
    "EnqueueError",
    "GpuUnavailable",
    "IllegalTransition",
    "JobFailed",
    "JobNotFound",
    "JobRecord",
    "JobSpec",
    "JobStatus",
    "LaunchRefused",
    "Progress",
    "RuntimeFault",
    "Settings",
    "SpecError",
    "SupervisedElsewhere",
    "TrainqError",
    "app",
    "cancel",
    "get_settings",
    "submit_training",
]
