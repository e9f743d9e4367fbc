"""What a job container sees of the host, and the variables that tell it where.

Its checkpoint directory at ``/checkpoints`` and its output directory at ``/outputs``,
both read-write and made writable for the container's non-root user; each dataset it
asked for read-only at ``/data/<name>``. Nothing else from the host is ever mounted:
the datasets are the ones the cluster declares (checked at submit and at launch).
"""

from __future__ import annotations

import os
from pathlib import Path

from docker.types import Mount

from trainq.errors import RuntimeFault
from trainq.runtime.base import DATA_MOUNT, OUTPUT_MOUNT, Launch, contract_env

CHECKPOINT_MOUNT = "/checkpoints"


def dataset_mount(name: str) -> str:
    return f"{DATA_MOUNT}/{name}"


def mounts(launch: Launch, user: str) -> list[Mount]:
    """The attempt's mounts, its writable directories created on the host first."""
    writable_dir(launch.checkpoint_dir, user)
    found = [Mount(CHECKPOINT_MOUNT, str(launch.checkpoint_dir), type="bind")]
    if launch.output_dir is not None:
        writable_dir(launch.output_dir, user)
        found.append(Mount(OUTPUT_MOUNT, str(launch.output_dir), type="bind"))
    for name, path in launch.datasets.items():
        found.append(Mount(dataset_mount(name), str(path), type="bind", read_only=True))
    return found


def container_env(launch: Launch) -> dict[str, str]:
    """The contract's variables, with the paths as the container sees them."""
    output_dir = OUTPUT_MOUNT if launch.output_dir is not None else None
    datasets = {name: dataset_mount(name) for name in launch.datasets}
    env = contract_env(launch, CHECKPOINT_MOUNT, output_dir, datasets)
    if datasets:
        env["TRAINQ_DATA_DIR"] = DATA_MOUNT
    return env


def writable_dir(path: Path, user: str) -> None:
    """Create the mounted directory, writable by the container's (non-root) ``uid[:gid]``."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        uid, _, gid = user.partition(":")
        if os.geteuid() == 0:
            os.chown(path, int(uid), int(gid or uid))
        else:
            path.chmod(0o777)
    except (OSError, ValueError) as exc:
        raise RuntimeFault(f"cannot prepare {path}: {exc}") from exc
