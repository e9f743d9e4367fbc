"""trainq: run AI training jobs in containers through Celery, reliably.

from trainq import submit_training
r = submit_training.delay(epochs=2, batch_size=32, learning_rate=1e-3)
r.get()  # {"final_loss": ..., "metrics": [...], "checkpoint_path": ...}
"""

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
from trainq.record import Attempt, JobRecord, Progress
from trainq.spec import JobSpec
from trainq.status import JobStatus
from trainq.tasks import app, cancel, submit_training

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
