"""trainq's exception tree. Each docstring is the exception's default message.

TrainqError
 ├── SpecError            (also a ValueError) bad job input, nothing enqueued
 ├── JobNotFound          (also a KeyError) no record under that id
 ├── IllegalTransition    a status change the transition map refuses
 ├── EnqueueError         the job was recorded but the broker refused it
 ├── AlreadyFinished      the job is final: there is nothing to cancel
 ├── WaitTimeout          (also a TimeoutError) a job was not final in time
 ├── Unavailable          Redis (broker, store) does not answer: try again later
 │    └── StoreUnavailable the artifact store does not answer (names its URL)
 ├── ArtifactError        an artifact cannot be read or written
 │    ├── BadArtifactPath  (also a ValueError) a path that leaves the job's artifacts
 │    └── ArtifactNotFound (also a KeyError) no such artifact
 ├── ConfigError          a process may not start as configured
 │    └── ApiRefused      the API or Flower would start without credentials
 ├── SupervisedElsewhere  another supervisor holds the job's lease
 ├── GpuUnavailable       a worker's --gpus names devices this host cannot give
 ├── RuntimeFault         the runtime (Docker, subprocess) failed us: transient
 │    └── LaunchRefused   the attempt can never start (bad command, no image): permanent
 └── JobFailed            the job ended without success (raised by the task)
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
