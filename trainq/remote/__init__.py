"""trainq's REST API as a client sees it: the remote CLI's way to jobs, logs, artifacts.

:class:`RemoteJobs` does over HTTP what :mod:`trainq.client` does against Redis, and
raises the same exceptions (:mod:`trainq.remote.http` maps the API's answers to them).
It never loads the worker side, Docker, or a Redis client.
"""

from trainq.remote.http import ApiClient
from trainq.remote.jobs import Identity, RemoteJobs

__all__ = ["ApiClient", "Identity", "RemoteJobs"]
