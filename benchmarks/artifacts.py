"""The artifact store's costs: training while checkpoints sync, and a restore on a new host.

Sync: the standard train.py, as a job through trainq's Runner on the process runtime
(records in memory), once with the artifact store on (AttemptFiles: every epoch's
checkpoint uploaded and the log archived, ``artifact_sync_interval_s=0``) and once
off (``files=None``), same epochs, samples and seed, the pairs interleaved. Figures:
the samples/s train.py reports (median of every epoch after the first, all runs),
on against off; and, which the machine's noise hardly moves, the worker process's
CPU time per epoch (getrusage) on against off, the difference being the sync's own
cost, and the S3 server's.

Restore: a checkpoint (one N MiB file of random bytes and a small one) published from
host A; on host B (an empty folder, its own state file) ``checkpoints.restore``
against a plain copy of the same blobs from the same store, alternately, medians:
from a folder ``shutil.copyfile``; from S3 boto3's ``download_file`` as one GET (the
quickest plain download here), with s3fs's ``get_file`` printed alongside.
Reference: sha256 of the same bytes in memory, a restore's floor (it checks every
byte).

Both on S3 (a moto server started here, on the same cores as everything else) and on
a file:// store.

Run alone: .venv/bin/python -m benchmarks.artifacts [--quick] [--pairs N] [--epochs N]
  [--samples N] [--size-mb N] [--rounds N] [--only sync|restore]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import itertools
import os
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from benchmarks.figures import Figure, interleave, report, timed
from trainq.artifacts import checkpoints
from trainq.artifacts.manifest import blob_key
from trainq.artifacts.store import ArtifactStore
from trainq.config import Settings
from trainq.jobs.record import Progress
from trainq.jobs.spec import JobSpec
from trainq.jobs.status import JobStatus
from trainq.runtime.factory import make_runtime
from trainq.store.memory import MemoryCoordination, MemoryJobRecords
from trainq.worker.runner import Runner
from trainq.worker.transfers import AttemptFiles

# The tests' moto server (tests/ is outside mypy's files: boto3 there has no stubs).
s3server: Any = importlib.import_module("tests.s3server")
BUCKET = "trainq-bench"
SMALL_FILE_BYTES = 4096


class Run(NamedTuple):
    rates: list[float]  # samples/s of each epoch after the first
    worker_cpu_s: float  # this process's CPU time while the job ran (the worker's)
    server_cpu_s: float  # the S3 server's, meanwhile (0 without one)
    syncs: int  # checkpoints published (the manifest's sequence)


class Store(NamedTuple):
    name: str
    slug: str  # in job ids
    settings: dict[str, Any]  # the worker's settings that name the store
    server: Any  # the S3 server (tests.s3server.S3Server), or None
    artifacts: ArtifactStore  # built once, as a worker does


def train_run(root: Path, store: Store, job: str, sync: bool, epochs: int, samples: int) -> Run:
    """train.py through a Runner, its checkpoints synced to ``store`` or not."""
    settings = Settings(
        hostname="bench-a", runtime="process", log_dir=root / "logs",
        checkpoint_dir=root / "ck", output_dir=root / "out", artifact_sync_interval_s=0,
        **store.settings,
    )  # fmt: skip
    artifacts = store.artifacts if sync else None
    rates: list[float] = []

    def progress(p: Progress) -> None:
        if p.epoch is not None and p.epoch > 1 and p.samples_per_s is not None:
            rates.append(p.samples_per_s)

    records = MemoryJobRecords()
    runner = Runner(
        records=records, coordination=MemoryCoordination(), runtime=make_runtime(settings),
        settings=settings, worker="bench@bench-a", on_progress=progress,
        files=AttemptFiles(artifacts, settings) if sync else None,
    )  # fmt: skip
    command = [settings.process_python, str(settings.train_script), "--samples", str(samples),
               "--seed", "0"]  # fmt: skip
    server_before = _server_cpu_s(store.server)
    worker_before = _worker_cpu_s()
    runner.run(job, JobSpec(epochs=epochs, command=command))
    worker_cpu_s = _worker_cpu_s() - worker_before
    server_cpu_s = _server_cpu_s(store.server) - server_before
    record = records.get(job)
    assert record.status == JobStatus.SUCCEEDED, record.error
    assert len(rates) == epochs - 1, rates
    syncs = 0
    if artifacts is not None:
        assert record.attempts[-1].artifact_error is None, record.attempts[-1].artifact_error
        manifest = checkpoints.read_manifest(artifacts, job)
        syncs = manifest.sequence if manifest else 0
        artifacts.delete_prefix(f"jobs/{job}")
    return Run(rates, worker_cpu_s, server_cpu_s, syncs)


def sync_figures(root: Path, store: Store, pairs: int, epochs: int, samples: int) -> list[Figure]:
    counter = itertools.count()

    def variant(sync: bool) -> Callable[[], Run]:
        label = "on" if sync else "off"
        return lambda: train_run(
            root, store, f"sync-{store.slug}-{label}-{next(counter)}", sync, epochs, samples
        )

    runs = interleave(pairs, {"on": variant(True), "off": variant(False)})
    on, off = runs["on"], runs["off"]

    def per_epoch_ms(values: list[float]) -> float:
        return 1000 * statistics.median(values) / epochs

    ratios = [
        statistics.median(a.rates) / statistics.median(b.rates)
        for a, b in zip(on, off, strict=True)
    ]
    print(f"{store.name}: samples/s ratio on/off per pair {[round(r, 4) for r in ratios]}, "
          f"syncs per run {[r.syncs for r in on]} of {epochs} epochs", flush=True)  # fmt: skip
    figures = [
        Figure(
            f"{store.name}: train.py samples/s, sync on (baseline: off; median of epochs)",
            "samples/s",
            statistics.median(rate for run in on for rate in run.rates),
            statistics.median(rate for run in off for rate in run.rates),
            ">= 0.98",
            goal_on="ratio",
        ),
        Figure(
            f"{store.name}: worker CPU per epoch, sync on (baseline: off; overhead = the sync's)",
            "ms",
            per_epoch_ms([r.worker_cpu_s for r in on]),
            per_epoch_ms([r.worker_cpu_s for r in off]),
            "",
        ),
    ]
    if store.server is not None:
        figures.append(
            Figure(
                f"{store.name}: S3 server CPU per epoch, sync on (baseline: off)",
                "ms",
                per_epoch_ms([r.server_cpu_s for r in on]),
                per_epoch_ms([r.server_cpu_s for r in off]),
                "",
            )
        )
    return figures


def restore_figures(root: Path, store: Store, size_mb: int, rounds: int) -> list[Figure]:
    """Publish from host A, then restore on host B against a plain copy, alternately."""
    artifacts = store.artifacts
    job = f"restore-{store.slug}"
    host_a = root / "host-a" / job
    host_a.mkdir(parents=True)
    big = os.urandom(size_mb << 20)
    (host_a / "checkpoint.pt").write_bytes(big)
    (host_a / "meta.json").write_bytes(os.urandom(SMALL_FILE_BYTES))
    manifest = checkpoints.publish(
        artifacts, job, host_a, attempt=1, host="bench-a", epoch=1,
        state_path=root / "host-a" / f".{job}.sync.json",
    )  # fmt: skip
    assert manifest is not None
    blobs = {rel: blob_key(job, e.blob) for rel, e in manifest.files.items()}
    copies = _plain_copies(store)
    host_b = root / "host-b"

    def restore() -> float:
        os.sync()  # the last round's writes are not this one's to pay for
        state = host_b / f".{job}.sync.json"
        with timed() as elapsed_s:
            restored = checkpoints.restore(artifacts, job, host_b / job, state_path=state)
            took_s = elapsed_s()
        assert restored is not None and restored.downloaded_bytes == sum(
            e.size for e in manifest.files.values()
        )
        shutil.rmtree(host_b)
        return took_s

    def plain(copy_blob: Callable[[str, Path], object]) -> Callable[[], float]:
        def copy() -> float:
            os.sync()
            (host_b / job).mkdir(parents=True)
            with timed() as elapsed_s:
                for rel, key in blobs.items():
                    copy_blob(key, host_b / job / rel)
                took_s = elapsed_s()
            assert (host_b / job / "checkpoint.pt").stat().st_size == len(big)
            shutil.rmtree(host_b)
            return took_s

        return copy

    def sha256() -> float:
        with timed() as elapsed_s:
            hashlib.sha256(big).hexdigest()
            return elapsed_s()

    variants = {"restore": restore, **{name: plain(c) for name, c in copies.items()}}
    times = interleave(rounds, {**variants, "sha256": sha256})
    for name in variants:
        print(f"{store.name}: {name} {_rounded(times[name])} s", flush=True)
    artifacts.delete_prefix(f"jobs/{job}")
    baseline = next(iter(copies))
    copy_s = statistics.median(times[baseline])
    return [
        Figure(
            f"{store.name}: restore of a {size_mb} MiB checkpoint on a new host "
            f"(baseline: {baseline} of its blobs; median)",
            "s",
            statistics.median(times["restore"]),
            copy_s,
            "<= 1.2",
            goal_on="ratio",
        ),
        Figure(
            f"{store.name}: sha256 of the same {size_mb} MiB in memory "
            "(reference: a restore's floor; baseline: the plain copy)",
            "s",
            statistics.median(times["sha256"]),
            copy_s,
            "",
        ),
    ]


def _plain_copies(store: Store) -> dict[str, Callable[[str, Path], object]]:
    """Copies of one key of the store to a local path without trainq, by name; the
    first is the baseline (on S3 the quickest here: moto serves a ranged GET, which
    boto3's parts and s3fs's file reads make, by copying the whole object)."""
    url = store.settings["artifact_url"]
    if store.server is None:
        folder = Path(url.removeprefix("file://"))
        return {"shutil.copyfile": lambda key, local: shutil.copyfile(folder / key, local)}
    import s3fs  # type: ignore[import-untyped]
    from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped]

    client = store.server.client()
    one_get = TransferConfig(multipart_threshold=1 << 62)
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    fs = s3fs.S3FileSystem(
        endpoint_url=store.server.endpoint_url, key=s3server.ACCESS_KEY, secret=s3server.SECRET_KEY,
        client_kwargs={"region_name": s3server.REGION}, skip_instance_cache=True,
    )  # fmt: skip
    return {
        "boto3 download_file, one GET": lambda key, local: client.download_file(
            bucket, f"{prefix}/{key}", str(local), Config=one_get
        ),
        "s3fs get_file": lambda key, local: fs.get_file(f"{bucket}/{prefix}/{key}", str(local)),
    }


@contextmanager
def stores(root: Path) -> Iterator[list[Store]]:
    """The S3 store (a moto server, stopped after) and a file:// store."""
    server = s3server.S3Server().start()
    try:
        server.make_bucket(BUCKET)
        s3: dict[str, Any] = s3server.store_settings(f"s3://{BUCKET}/bench", server.endpoint_url)
        folder: dict[str, Any] = {"artifact_url": (root / "store").as_uri()}
        yield [
            Store(name, slug, options, server, ArtifactStore.from_settings(Settings(**options)))
            for name, slug, options, server in [
                ("S3 (moto)", "s3", s3, server),
                ("file://", "file", folder, None),
            ]
        ]
    finally:
        server.stop()


def _worker_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _server_cpu_s(server: Any) -> float:
    """The S3 server process's CPU time so far (all its threads), from /proc."""
    if server is None or server.proc is None:
        return 0.0
    fields = Path(f"/proc/{server.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _rounded(values: list[float]) -> list[float]:
    return [round(v, 4) for v in values]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 pair, 4 epochs, 20 MiB")
    parser.add_argument("--pairs", type=int, default=3, help="on/off training pairs per store")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--samples", type=int, default=10_000, help="per epoch (~0.5 s)")
    parser.add_argument("--size-mb", type=int, default=100, help="the checkpoint, in MiB")
    parser.add_argument("--rounds", type=int, default=5, help="restore/copy rounds per store")
    parser.add_argument(
        "--only", choices=["sync", "restore"], help="one half, its figures printed, not written"
    )
    args = parser.parse_args()
    if args.quick:
        args.pairs, args.epochs, args.size_mb, args.rounds = 1, 4, 20, 3

    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="trainq-bench-artifacts-"))
    figures: list[Figure] = []
    try:
        with stores(root) as both:
            for store in both if args.only != "restore" else []:
                figures += sync_figures(root / "sync", store, args.pairs, args.epochs, args.samples)
            for store in both if args.only != "sync" else []:
                figures += restore_figures(root / "restore", store, args.size_mb, args.rounds)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.only:
        for figure in figures:
            print(figure.as_json())
        return
    path = report("artifacts", figures)
    print(f"written to {path} in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
