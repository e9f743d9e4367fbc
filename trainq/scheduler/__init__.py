"""The scheduler: which pending job is sent to its Celery queue, and when.

Submit records a job as pending (:mod:`trainq.store.pending`); the admission loop
(:mod:`.admission`), run by whichever worker holds the leader lease, admits pending
jobs by priority, fair share and age within each owner's quota (:mod:`.decide`,
:mod:`.policy`), and asks lower-priority work to yield when a job has waited too
long. :mod:`.view` says why each pending job waits. ``TRAINQ_SCHEDULER=fifo`` sends
every job at submit instead.
"""
