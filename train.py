"""Standard trainq training script: a small MLP regression on synthetic data.

Runs inside a container or as a local subprocess; depends only on the
standard library and torch (nothing from ``trainq``).

CLI (every option defaults to an environment variable; arguments win):
  --epochs N          TRAINQ_EPOCHS          (default 10, >= 1)
  --batch-size N      TRAINQ_BATCH_SIZE      (default 32, >= 1)
  --learning-rate F   TRAINQ_LEARNING_RATE   (default 1e-3, > 0)
  --seed N            TRAINQ_SEED            (default 0)
  --samples N         TRAINQ_SAMPLES         (default 4096, >= 1)
  --checkpoint-dir D  TRAINQ_CHECKPOINT_DIR  (default ./checkpoints)
  --output-dir D      TRAINQ_OUTPUT_DIR      (default none: no model file)
  --device D          TRAINQ_DEVICE          (default auto: cuda if available)
  --epoch-sleep-s F   TRAINQ_EPOCH_SLEEP_S   (default 0; sleep after each
                                              epoch, a testing aid)
  --threads N         OMP_NUM_THREADS        (default 1; torch's CPU threads.
                                              The model is small: one thread
                                              is fastest, and a second one
                                              waits on a busy core: measured
                                              ~1.5k instead of ~30k samples/s
                                              with one of 2 cores taken)
TRAINQ_JOB_ID and TRAINQ_ATTEMPT, when set, are echoed in the starting line.
Each TRAINQ_DATASET_<NAME> set (a dataset's directory) gets a plain line at start
saying how many entries its top level holds.

Output protocol (stdout, one line each, flushed immediately):
  after each epoch (written after that epoch's checkpoint is on disk):
    {"trainq": "progress", "epoch", "epochs", "step", "loss",
     "samples_per_s", "eta_s"}
  at the end of a successful run:
    {"trainq": "result", "final_loss", "first_loss", "epochs", "history",
     "checkpoint", "device", "cuda_visible_devices", "cuda_device_count"}
    ("epochs" = epochs completed, resumes included); on CUDA also "device_name"
    and "device_uuid" (GPU-..., as NVML writes it) of the device it trained on;
    with an output dir also "model", the path of the final model
  Everything else (starting line, resume and stop notices) is plain text.

Checkpoints: <checkpoint-dir>/checkpoint.pt, replaced atomically after each
epoch (model, optimizer, completed epoch, loss history, RNG states). If it
exists at start, training resumes from the next epoch.

Model: with an output dir, <output-dir>/model.pt (the final model's state_dict),
written atomically after a successful run, before the result line.

Exit codes:
  0   success (also when the checkpoint already covers all epochs)
  1   unexpected error (Python traceback on stderr)
  2   invalid arguments or environment values (message on stderr)
  75  stopped by SIGTERM/SIGINT after the last completed epoch's checkpoint
      was made sure to be on disk (EX_TEMPFAIL: preempted, safe to retry or
      resume)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from torch import nn

EXIT_PREEMPTED = 75
CHECKPOINT_NAME = "checkpoint.pt"
MODEL_NAME = "model.pt"
DATASET_PREFIX = "TRAINQ_DATASET_"
IN_FEATURES = 16

_stop_requested = False


def _request_stop(signum: int, frame: FrameType | None) -> None:
    global _stop_requested
    _stop_requested = True


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(description="trainq standard training script")
    # String defaults are run through `type`, so bad env values also exit 2.
    p.add_argument("--epochs", type=int, default=env("TRAINQ_EPOCHS", "10"))
    p.add_argument("--batch-size", type=int, default=env("TRAINQ_BATCH_SIZE", "32"))
    p.add_argument("--learning-rate", type=float, default=env("TRAINQ_LEARNING_RATE", "1e-3"))
    p.add_argument("--seed", type=int, default=env("TRAINQ_SEED", "0"))
    p.add_argument("--samples", type=int, default=env("TRAINQ_SAMPLES", "4096"))
    p.add_argument("--checkpoint-dir", default=env("TRAINQ_CHECKPOINT_DIR", "./checkpoints"))
    p.add_argument("--output-dir", default=env("TRAINQ_OUTPUT_DIR") or None)
    p.add_argument("--device", default=env("TRAINQ_DEVICE", "auto"))
    p.add_argument("--epoch-sleep-s", type=float, default=env("TRAINQ_EPOCH_SLEEP_S", "0"))
    p.add_argument("--threads", type=int, default=env("OMP_NUM_THREADS", "1"))
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error(f"--epochs must be >= 1 (got {args.epochs})")
    if args.batch_size < 1:
        p.error(f"--batch-size must be >= 1 (got {args.batch_size})")
    if not args.learning_rate > 0:
        p.error(f"--learning-rate must be > 0 (got {args.learning_rate})")
    if args.samples < 1:
        p.error(f"--samples must be >= 1 (got {args.samples})")
    if not args.epoch_sleep_s >= 0:
        p.error(f"--epoch-sleep-s must be >= 0 (got {args.epoch_sleep_s})")
    if args.threads < 1:
        p.error(f"--threads must be >= 1 (got {args.threads})")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(args.device)
    except RuntimeError as exc:
        p.error(f"--device: {exc}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        p.error(f"--device {args.device}: CUDA is not available")
    return args


def emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


def make_data(seed: int, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic nonlinear regression data from a fixed teacher function."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, IN_FEATURES, generator=g)
    w = torch.randn(IN_FEATURES, 1, generator=g) / IN_FEATURES**0.5
    y = torch.sin(2.0 * (x @ w)) + 0.5 * x[:, :1] * x[:, 1:2]
    y = y + 0.05 * torch.randn(samples, 1, generator=g)
    return x, y


def make_model() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(IN_FEATURES, 64),
        nn.ReLU(),
        nn.Linear(64, 64),
        nn.ReLU(),
        nn.Linear(64, 1),
    )


def save_checkpoint(ckpt_dir: Path, state: dict[str, Any]) -> Path:
    """Write the checkpoint atomically: tmp file, fsync, rename, fsync dir."""
    return save_atomically(ckpt_dir, CHECKPOINT_NAME, state)


def save_atomically(folder: Path, name: str, state: dict[str, Any]) -> Path:
    """torch.save to a tmp file, fsync, rename, fsync dir: never a half-written file."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / name
    tmp = folder / (name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return final


def result_line(
    history: list[dict[str, Any]], ckpt: Path, device: str, model: Path | None = None
) -> None:
    emit(
        {
            "trainq": "result",
            "final_loss": history[-1]["loss"],
            "first_loss": history[0]["loss"],
            "epochs": len(history),
            "history": history,
            "checkpoint": str(ckpt),
            "device": device,
            **device_facts(device),
            **({"model": str(model)} if model is not None else {}),
        }
    )


def finish(
    history: list[dict[str, Any]], ckpt: Path, device: str, model: nn.Module, output_dir: str | None
) -> int:
    """Save the final model to the output dir (if any), then say the result."""
    saved = None
    if output_dir is not None:
        saved = save_atomically(Path(output_dir).resolve(), MODEL_NAME, model.state_dict())
    result_line(history, ckpt, device, saved)
    return 0


def describe_datasets() -> None:
    """One line per dataset the job was given: cheap, the top level only."""
    for var in sorted(v for v in os.environ if v.startswith(DATASET_PREFIX)):
        name = var[len(DATASET_PREFIX) :].lower()
        where = os.environ[var]
        try:
            with os.scandir(where) as entries:
                count = f"{sum(1 for _ in entries)} files"
        except OSError as exc:
            count = f"not readable ({exc.strerror or exc})"
        print(f"dataset {name} at {where}: {count}", flush=True)


def device_facts(device: str) -> dict[str, Any]:
    """What the run could see of GPUs: which were visible, and the one it trained on."""
    facts: dict[str, Any] = {
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "cuda_device_count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
    }
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        facts["device_name"] = props.name
        uuid = getattr(props, "uuid", None)
        facts["device_uuid"] = f"GPU-{uuid}" if uuid is not None else None
    return facts


def interruptible_sleep(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not _stop_requested and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.05))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    ckpt_dir = Path(args.checkpoint_dir).resolve()
    ckpt_path = ckpt_dir / CHECKPOINT_NAME

    ident = "".join(
        f" {k}={os.environ[v]}"
        for k, v in (("job_id", "TRAINQ_JOB_ID"), ("attempt", "TRAINQ_ATTEMPT"))
        if v in os.environ
    )
    print(
        f"trainq train.py starting:{ident} device={device} epochs={args.epochs}"
        f" batch_size={args.batch_size} lr={args.learning_rate} seed={args.seed}"
        f" samples={args.samples} checkpoint_dir={ckpt_dir}",
        flush=True,
    )
    describe_datasets()

    torch.manual_seed(args.seed)
    x, y = make_data(args.seed, args.samples)
    x, y = x.to(device), y.to(device)
    model = make_model().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    shuffle_gen = torch.Generator().manual_seed(args.seed + 1)
    loss_fn = nn.MSELoss()

    done_epochs = 0
    step = 0
    history: list[dict[str, Any]] = []
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        shuffle_gen.set_state(state["shuffle_rng"])
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        done_epochs = int(state["epoch"])
        step = int(state["step"])
        history = list(state["history"])
        if state.get("seed") != args.seed or state.get("samples") != args.samples:
            print(
                f"warning: checkpoint was made with seed={state.get('seed')}"
                f" samples={state.get('samples')}; continuing with current data",
                flush=True,
            )
        print(f"resuming from epoch {done_epochs}", flush=True)
        if done_epochs >= args.epochs:
            return finish(history, ckpt_path, str(device), model, args.output_dir)

    n = args.samples
    run_epoch_times: list[float] = []
    for epoch in range(done_epochs + 1, args.epochs + 1):
        if _stop_requested:
            break
        t0 = time.monotonic()
        model.train()
        total = torch.zeros((), device=device)
        perm = torch.randperm(n, generator=shuffle_gen).to(device)
        interrupted = False
        for start in range(0, n, args.batch_size):
            if _stop_requested:
                interrupted = True
                break
            idx = perm[start : start + args.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += loss.detach() * idx.numel()
            step += 1
        if interrupted:
            break
        train_s = time.monotonic() - t0
        epoch_loss = float(total.item()) / n
        history.append({"epoch": epoch, "loss": epoch_loss})
        done_epochs = epoch
        ckpt_path = save_checkpoint(
            ckpt_dir,
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": epoch,
                "step": step,
                "history": history,
                "seed": args.seed,
                "samples": args.samples,
                "shuffle_rng": shuffle_gen.get_state(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            },
        )
        run_epoch_times.append(time.monotonic() - t0 + args.epoch_sleep_s)
        mean_epoch = sum(run_epoch_times) / len(run_epoch_times)
        emit(
            {
                "trainq": "progress",
                "epoch": epoch,
                "epochs": args.epochs,
                "step": step,
                "loss": epoch_loss,
                "samples_per_s": n / train_s if train_s > 0 else 0.0,
                "eta_s": mean_epoch * (args.epochs - epoch),
            }
        )
        if epoch < args.epochs:
            interruptible_sleep(args.epoch_sleep_s)

    if done_epochs < args.epochs:
        # Stopped by signal: every completed epoch was checkpointed on the spot,
        # so the last completed epoch's state is already on disk.
        where = (
            f"checkpoint at epoch {done_epochs}"
            if ckpt_path.exists()
            else "no checkpoint (no epoch completed)"
        )
        print(f"stopped by signal, {where}", flush=True)
        return EXIT_PREEMPTED
    return finish(history, ckpt_path, str(device), model, args.output_dir)


if __name__ == "__main__":
    sys.exit(main())
