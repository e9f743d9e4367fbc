"""Tests for the standard training script train.py, run as a subprocess."""

from __future__ import annotations

import importlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAIN = REPO_ROOT / "train.py"
TIMEOUT_S = 60


@pytest.fixture(autouse=True)
def torch() -> ModuleType:
    """torch, which train.py needs: a prerequisite, so its absence fails every test here."""
    try:
        return importlib.import_module("torch")
    except ImportError as exc:
        pytest.fail(
            f"torch is not installed ({exc}): run `make install`, which installs "
            "trainq's torch extra (pip install -e '.[torch]')"
        )


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINQ_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_train(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TRAIN), *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def protocol_lines(stdout: str) -> list[dict[str, Any]]:
    out = []
    for line in stdout.splitlines():
        if line.startswith('{"trainq"'):
            out.append(json.loads(line))
    return out


def progress(stdout: str) -> list[dict[str, Any]]:
    return [o for o in protocol_lines(stdout) if o["trainq"] == "progress"]


def result(stdout: str) -> dict[str, Any]:
    results = [o for o in protocol_lines(stdout) if o["trainq"] == "result"]
    assert len(results) == 1, stdout
    return results[0]


def test_two_epoch_run(tmp_path: Path) -> None:
    ckpt_dir = tmp_path / "ckpt"
    proc = run_train("--epochs", "2", "--checkpoint-dir", str(ckpt_dir), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    prog = progress(proc.stdout)
    assert [p["epoch"] for p in prog] == [1, 2]
    assert all(p["epochs"] == 2 for p in prog)
    assert prog[0]["step"] > 0 and prog[1]["step"] == 2 * prog[0]["step"]
    assert prog[-1]["eta_s"] == 0
    assert all(p["samples_per_s"] > 0 for p in prog)
    res = result(proc.stdout)
    assert res["epochs"] == 2
    assert res["final_loss"] < res["first_loss"]
    assert [h["epoch"] for h in res["history"]] == [1, 2]
    assert res["device"] == "cpu"
    assert Path(res["checkpoint"]) == (ckpt_dir / "checkpoint.pt").resolve()
    assert (ckpt_dir / "checkpoint.pt").is_file()
    assert not (ckpt_dir / "checkpoint.pt.tmp").exists()
    # Plain lines must not look like protocol lines.
    plain = [ln for ln in proc.stdout.splitlines() if not ln.startswith('{"trainq"')]
    assert plain and all(not ln.startswith("{") for ln in plain)


def test_resume_continues_from_checkpoint(tmp_path: Path, torch: ModuleType) -> None:
    ckpt = str(tmp_path / "ckpt")
    small = ("--samples", "1024")
    first = run_train("--epochs", "1", *small, "--checkpoint-dir", ckpt, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "resuming" not in first.stdout
    second = run_train("--epochs", "3", *small, "--checkpoint-dir", ckpt, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "resuming from epoch 1" in second.stdout
    assert [p["epoch"] for p in progress(second.stdout)] == [2, 3]
    res = result(second.stdout)
    assert [h["epoch"] for h in res["history"]] == [1, 2, 3]
    assert res["first_loss"] == result(first.stdout)["final_loss"]
    state = torch.load(Path(ckpt) / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 3
    # A further run with nothing left to do just reports the result.
    third = run_train("--epochs", "3", *small, "--checkpoint-dir", ckpt, cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert progress(third.stdout) == []
    assert result(third.stdout)["history"] == res["history"]


def test_sigterm_checkpoints_and_exits_75(tmp_path: Path, torch: ModuleType) -> None:
    ckpt_dir = tmp_path / "ckpt"
    cmd = [sys.executable, str(TRAIN), "--epochs", "50", "--epoch-sleep-s", "0.5"]
    cmd += ["--checkpoint-dir", str(ckpt_dir)]
    lines: queue.Queue[str | None] = queue.Queue()
    seen: list[str] = []
    with subprocess.Popen(
        cmd, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:

        def reader() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while True:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"no progress line in time: {seen}"
                try:
                    line = lines.get(timeout=remaining)
                except queue.Empty:
                    continue
                assert line is not None, f"train.py ended early: {seen}"
                seen.append(line)
                if line.startswith('{"trainq": "progress"'):
                    break
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            thread.join(timeout=5)
        assert proc.stderr is not None
        stderr = proc.stderr.read()
    while not lines.empty():
        item = lines.get()
        if item is not None:
            seen.append(item)
    out = "".join(seen)
    assert rc == 75, (out, stderr)
    assert "stopped by signal, checkpoint at epoch" in out
    assert '"trainq": "result"' not in out
    state = torch.load(ckpt_dir / "checkpoint.pt", weights_only=False)
    assert state["epoch"] >= 1
    assert len(state["history"]) == state["epoch"] < 50
    assert f"checkpoint at epoch {state['epoch']}" in out


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (["--epochs", "0"], "epochs"),
        (["--batch-size", "0"], "batch-size"),
        (["--learning-rate", "0"], "learning-rate"),
        (["--threads", "0"], "threads"),
    ],
)
def test_invalid_args_exit_2(tmp_path: Path, args: list[str], word: str) -> None:
    proc = run_train(*args, "--checkpoint-dir", str(tmp_path / "c"), cwd=tmp_path)
    assert proc.returncode == 2
    assert word in proc.stderr
    assert protocol_lines(proc.stdout) == []
    assert not (tmp_path / "c").exists()


def test_env_defaults_and_args_win(tmp_path: Path) -> None:
    env = _env() | {"TRAINQ_EPOCHS": "0"}
    bad = subprocess.run(
        [sys.executable, str(TRAIN), "--checkpoint-dir", str(tmp_path / "a")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert bad.returncode == 2 and "epochs" in bad.stderr
    env |= {"TRAINQ_JOB_ID": "job-42", "TRAINQ_ATTEMPT": "3", "TRAINQ_SAMPLES": "256"}
    ok = subprocess.run(
        [sys.executable, str(TRAIN), "--epochs", "1", "--checkpoint-dir", str(tmp_path / "b")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert ok.returncode == 0, ok.stderr
    assert "job-42" in ok.stdout and "attempt=3" in ok.stdout
    assert [p["step"] for p in progress(ok.stdout)] == [256 // 32]


def test_same_seed_is_deterministic(tmp_path: Path) -> None:
    def loss(seed: int, name: str) -> float:
        ckpt = str(tmp_path / name)
        proc = run_train("--epochs", "1", "--samples", "1024", "--seed", str(seed),
                         "--checkpoint-dir", ckpt, cwd=tmp_path)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return float(result(proc.stdout)["final_loss"])

    loss_a = loss(3, "a")
    assert loss_a == pytest.approx(loss(3, "b"), rel=1e-6)
    assert loss_a != pytest.approx(loss(4, "c"), rel=1e-6)


def test_result_reports_the_devices_it_saw(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(TRAIN), "--epochs", "1", "--samples", "64"],
        cwd=tmp_path,
        env={**_env(), "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr
    res = result(proc.stdout)
    assert res["cuda_visible_devices"] == ""
    assert res["cuda_device_count"] == 0
    assert res["device"] == "cpu"
    assert "device_name" not in res  # only on CUDA
    # Without an output directory no model file is written.
    assert "model" not in res and not list(tmp_path.rglob("model.pt"))


def run_with_env(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TRAIN), "--epochs", "1", "--samples", "64", *args],
        cwd=cwd,
        env={**_env(), **env},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def test_the_final_model_is_saved_in_the_output_dir(tmp_path: Path, torch: ModuleType) -> None:
    out = tmp_path / "out"
    data = tmp_path / "imagenet"
    (data / "sub").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg", "sub/c.jpg"):
        (data / name).write_text("x")
    datasets = {"TRAINQ_DATASET_IMAGENET": str(data), "TRAINQ_DATASET_GONE": str(tmp_path / "gone")}
    proc = run_with_env({"TRAINQ_OUTPUT_DIR": str(out), **datasets}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # Each dataset is described at start (top-level entries), or said to be unreadable.
    assert f"dataset imagenet at {data}: 3 files" in proc.stdout.splitlines()
    assert f"dataset gone at {tmp_path / 'gone'}: not readable" in proc.stdout
    res = result(proc.stdout)
    assert Path(res["model"]) == (out / "model.pt").resolve()
    assert sorted(p.name for p in out.iterdir()) == ["model.pt"]  # no .tmp left
    state = torch.load(out / "model.pt", weights_only=True)
    checkpoint = torch.load(Path(res["checkpoint"]), weights_only=True)
    assert state.keys() == checkpoint["model"].keys()
    assert all(torch.equal(state[k], checkpoint["model"][k]) for k in state)

    # The option wins over the variable; a resumed, finished run saves it too.
    other = tmp_path / "other"
    again = run_with_env(
        {"TRAINQ_OUTPUT_DIR": str(out)},
        "--output-dir", str(other), "--checkpoint-dir", str(Path(res["checkpoint"]).parent),
        cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert Path(result(again.stdout)["model"]) == (other / "model.pt").resolve()
