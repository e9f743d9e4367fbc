"""trainq's exception tree. Each docstring is the exception's default message.

TrainqError
 ├── SpecError            (also a ValueError) bad job input, nothing enqueued
 ├── JobNotFound          (also a KeyError) no record under that id
 ├── IllegalTransition    a status change the transition map refuses
 ├── EnqueueError         the job was recorded but the broker refused it
 ├── AlreadyFinished      the job is final: there is nothing to cancel
 ├── WaitTimeout          (also a TimeoutError) a job was not final in time
 ├── Unavailable          Redis (broker, store) does not answer: try again later
 │    ├── StoreUnavailable the artifact store does not answer (names its URL)
 │    └── NotAccepted      too few replicas confirmed a new job: it was taken back
 ├── ArtifactError        an artifact cannot be read or written
 │    ├── BadArtifactPath  (also a ValueError) a path that leaves the job's artifacts
 │    └── ArtifactNotFound (also a KeyError) no such artifact
 ├── ConfigError          a process may not start as configured
 │    └── ApiRefused      the API or Flower would start without credentials
 ├── SupervisedElsewhere  another supervisor holds the job's lease
 ├── GpuUnavailable       a worker's --gpus names devices this host cannot give
 ├── RuntimeFault         the runtime (Docker, subprocess) failed us: transient
 │    └── LaunchRefused   the attempt can never start (bad command, no image): permanent
 ├── JobFailed            the job ended without success (raised by the task)
 ├── NotAuthenticated     no token, or one naming no enabled user (API 401)
 ├── Forbidden            a known user who may not do this (API 403)
 ├── UserNotFound         (also a KeyError) no such user or token id
 ├── UserExists           the user name is taken
 ├── QuotaExceeded        a submit over its owner's cap: nothing was recorded
 ├── RateLimited          too many requests with one token (API 429)
 ├── Preempted            the job yielded to a higher-priority job: pending again
 └── NotPending           a change for pending jobs only (priority) on one that is not
"""

from __future__ import annotations


class TrainqError(Exception):
    """trainq failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class SpecError(TrainqError, ValueError):
    """Invalid job spec."""


class JobNotFound(TrainqError, KeyError):
    """No job with that id."""

    def __str__(self) -> str:
        return str(self.args[0])


class IllegalTransition(TrainqError):
    """This status change is not allowed."""


class EnqueueError(TrainqError):
    """The job could not be sent to the broker."""


class AlreadyFinished(TrainqError):
    """The job has already finished."""


class WaitTimeout(TrainqError, TimeoutError):
    """The job did not finish in the time given."""


class Unavailable(TrainqError):
    """A service trainq needs does not answer; try again shortly."""


class StoreUnavailable(Unavailable):
    """The artifact store does not answer."""


class NotAccepted(Unavailable):
    """Too few Redis replicas confirmed the new job: it was not accepted; submit again."""


class ArtifactError(TrainqError):
    """An artifact could not be read or written."""


class BadArtifactPath(ArtifactError, ValueError):
    """That path does not name an artifact of the job."""


class ArtifactNotFound(ArtifactError, KeyError):
    """No such artifact."""

    def __str__(self) -> str:
        return str(self.args[0])


class ConfigError(TrainqError):
    """This process may not start as configured."""


class ApiRefused(ConfigError):
    """The service may not start as configured (e.g. no token outside development)."""


class SupervisedElsewhere(TrainqError):
    """Another supervisor holds this job."""


class GpuUnavailable(TrainqError):
    """The GPUs asked for cannot be used on this host."""


class RuntimeFault(TrainqError):
    """The runtime failed to start or follow the job."""


class LaunchRefused(RuntimeFault):
    """The runtime refused to start the job."""


class JobFailed(TrainqError):
    """The job did not succeed."""


class NotAuthenticated(TrainqError):
    """No token, or one that names no enabled user (unknown, revoked, malformed).

    The message never holds the token."""


class Forbidden(TrainqError):
    """The caller is known but may not do this (e.g. cancel a stranger's job)."""


class UserNotFound(TrainqError, KeyError):
    """No such user (or token id)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no such user"


class UserExists(TrainqError):
    """``users add`` of a name that is taken."""


class QuotaExceeded(TrainqError):
    """A submit over its owner's cap (the message names the cap); nothing was recorded."""


class RateLimited(TrainqError):
    """Too many requests with one token; ``retry_after_s`` says when to try again."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Preempted(TrainqError):
    """The job yielded its worker to a higher-priority job and is pending again."""


class NotPending(TrainqError):
    """The change applies to a pending job only (e.g. its priority), and this one is not."""
