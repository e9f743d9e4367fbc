"""What every caller (Python, CLI, API) does with jobs: submit, read, wait, cancel.

It sends by task name and never imports the worker side.
"""

from trainq.client.jobs import cancel, get_job, list_jobs, wait_for, waiting_reason
from trainq.client.scheduling import change_job, owner_shares, pending_queue
from trainq.client.submit import submit
from trainq.client.task import submit_training

__all__ = [
    "cancel",
    "change_job",
    "get_job",
    "list_jobs",
    "owner_shares",
    "pending_queue",
    "submit",
    "submit_training",
    "wait_for",
    "waiting_reason",
]
