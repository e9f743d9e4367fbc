"""The image allow-list: which images a job may name on this cluster."""

from __future__ import annotations

import fnmatch

from trainq.config import Settings


def image_allowed(image: str, settings: Settings) -> bool:
    """Whether ``image`` is the default image or matches an ``allowed_images`` pattern."""
    return any(fnmatch.fnmatchcase(image, pattern) for pattern in settings.image_patterns)
