"""What this cluster allows a job: its images, its longest time limit, its largest
container, its datasets. Submit applies it (refusing, naming the field); the Docker
runtime checks the image again before any container starts, and the worker checks the
datasets again on its own host.
"""

from __future__ import annotations

import fnmatch

from trainq.config import Settings
from trainq.errors import SpecError
from trainq.jobs.spec import JobSpec, parse_size


def image_allowed(image: str, settings: Settings) -> bool:
    """Whether ``image`` is the default image or matches an ``allowed_images`` pattern."""
    return any(fnmatch.fnmatchcase(image, pattern) for pattern in settings.image_patterns)


def with_defaults(spec: JobSpec, settings: Settings) -> JobSpec:
    """The spec with the image and time limit filled in; refuses what this cluster does
    not allow (a too long limit, an image off the allow-list, limits above the cap, an
    undeclared dataset)."""
    timeout_s = spec.timeout_s if spec.timeout_s is not None else settings.default_timeout_s
    if timeout_s > settings.max_job_s:
        raise SpecError(
            f"invalid job spec: timeout_s: must be at most {settings.max_job_s} s, "
            f"the longest job this cluster allows (got {timeout_s})"
        )
    image = spec.image or settings.default_image
    if not image_allowed(image, settings):
        raise SpecError(
            f"invalid job spec: image: {image!r} is not on this cluster's allow-list "
            f"({', '.join(settings.image_patterns)}; setting TRAINQ_ALLOWED_IMAGES)"
        )
    cap = parse_size(settings.container_memory)
    if spec.memory_bytes is not None and spec.memory_bytes > cap:
        raise SpecError(
            f"invalid job spec: memory: must be at most {settings.container_memory}, "
            f"this cluster's container limit (got {spec.memory!r})"
        )
    if spec.cpus is not None and spec.cpus > settings.container_cpus:
        raise SpecError(
            f"invalid job spec: cpus: must be at most {settings.container_cpus:g}, "
            f"this cluster's container limit (got {spec.cpus:g})"
        )
    check_datasets(spec.datasets, settings)
    return spec.model_copy(update={"image": image, "timeout_s": timeout_s})


def check_datasets(names: list[str], settings: Settings) -> None:
    """Refuses a dataset this cluster does not declare (nothing else is ever mounted),
    or one asked for twice."""
    declared = settings.dataset_paths
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise SpecError(f"invalid job spec: datasets: {name!r} is listed twice")
        seen.add(name)
        if name not in declared:
            known = f"declared: {', '.join(sorted(declared))}" if declared else "none declared"
            raise SpecError(
                f"invalid job spec: datasets: {name!r} is not a dataset of this cluster "
                f"({known}; setting TRAINQ_DATASETS)"
            )
