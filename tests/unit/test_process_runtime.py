"""ProcessRuntime: real subprocesses in their own process group, no Redis."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from trainq.errors import LaunchRefused, RuntimeFault
from trainq.runtime.base import CountedOutput, Exit, Found, Handle, Launch
from trainq.runtime.process import ProcessRuntime

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="reads /proc to see processes"),
    pytest.mark.timeout(60),
]

JOB = "job-p"
WAIT_S = 20.0


def wait_until(condition: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped yet counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Started:
    """The runtime under test, and every attempt a test starts, cleaned up after it."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.runtime = ProcessRuntime(
            sys.executable,
            Path("train.py"),
            base_env={"PATH": os.environ["PATH"]},
            stop_grace_s=1,
            spool_dir=tmp_path / "spool",
        )
        self.handles: list[Handle] = []
        self.pids: list[int] = []

    def launch(self, code: str, attempt: int = 1, **changes: object) -> Launch:
        values: dict[str, object] = {
            "job_id": JOB,
            "attempt": attempt,
            "image": "unused",
            "command": [sys.executable, "-c", code],
            "env": {"USER_VAR": "from-spec"},
            "checkpoint_dir": self.tmp_path / "ck" / JOB,
            "worker": "worker-1",
            **changes,
        }
        return Launch(**values)  # type: ignore[arg-type]

    def start(self, code: str, attempt: int = 1, **changes: object) -> Handle:
        handle = self.runtime.start(self.launch(code, attempt, **changes))
        self.handles.append(handle)
        return handle

    def close(self) -> None:
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for handle in self.handles:
            with contextlib.suppress(RuntimeFault):
                self.runtime.stop(handle, grace_s=0)
                self.runtime.wait(handle, WAIT_S)
            self.runtime.remove(handle)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Started]:
    s = Started(tmp_path)
    try:
        yield s
    finally:
        s.close()


PRINT_ENV = (
    "import os\n"
    "for name in ('TRAINQ_JOB_ID', 'TRAINQ_ATTEMPT', 'TRAINQ_CHECKPOINT_DIR', 'USER_VAR',\n"
    "             'PYTHONUNBUFFERED', 'TRAINQ_LEAK_CHECK', 'CUDA_VISIBLE_DEVICES',\n"
    "             'NVIDIA_VISIBLE_DEVICES'):\n"
    "    print(f'{name}={os.environ.get(name, \"<unset>\")}')\n"
    "print('line one')\n"
    "print('line two')\n"
)


def env_of(lines: list[str]) -> dict[str, str]:
    return dict(line.split("=", 1) for line in lines if "=" in line)


def test_output_and_environment_contract(started: Started, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINQ_LEAK_CHECK", "worker-only")
    handle = started.start(PRINT_ENV, attempt=2)

    lines = list(started.runtime.output(handle))

    assert started.runtime.wait(handle, WAIT_S) == Exit(0)
    assert lines[-2:] == ["line one", "line two"]
    env = env_of(lines)
    assert env["TRAINQ_JOB_ID"] == JOB
    assert env["TRAINQ_ATTEMPT"] == "2"
    assert env["TRAINQ_CHECKPOINT_DIR"] == str(started.tmp_path / "ck" / JOB)
    assert env["USER_VAR"] == "from-spec"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["TRAINQ_LEAK_CHECK"] == "<unset>"  # only base_env is inherited
    assert env["CUDA_VISIBLE_DEVICES"] == ""  # a CPU job sees no GPU
    assert (started.tmp_path / "ck" / JOB).is_dir()
    assert handle == Handle(JOB, 2, handle.ref)
    assert handle.ref.isdigit()


def test_find_reports_running_then_ended(started: Started) -> None:
    handle = started.start("import time; print('ready', flush=True); time.sleep(60)")

    assert started.runtime.find(JOB) == [Found(handle, True)]
    assert started.runtime.find("other-job") == []
    started.runtime.stop(handle, grace_s=5)
    assert started.runtime.wait(handle, WAIT_S) is not None
    assert started.runtime.find(JOB) == [Found(handle, False)]


def test_exit_code_is_reported(started: Started) -> None:
    handle = started.start("import sys; print('bye'); sys.exit(3)")

    assert list(started.runtime.output(handle)) == ["bye"]
    assert started.runtime.wait(handle, WAIT_S) == Exit(3)


def test_wait_returns_none_while_running(started: Started) -> None:
    handle = started.start("import time; print('ready', flush=True); time.sleep(60)")
    assert next(iter(started.runtime.output(handle))) == "ready"

    assert started.runtime.wait(handle, 0.05) is None


def test_stop_honoured_sigterm(started: Started) -> None:
    handle = started.start("import time; print('ready', flush=True); time.sleep(60)")
    assert next(iter(started.runtime.output(handle))) == "ready"

    began = time.monotonic()
    started.runtime.stop(handle, grace_s=10)

    assert time.monotonic() - began < 10
    assert started.runtime.wait(handle, 0) == Exit(128 + signal.SIGTERM)


def test_stop_kills_a_process_that_ignores_sigterm(started: Started) -> None:
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    handle = started.start(code)
    assert next(iter(started.runtime.output(handle))) == "ready"

    began = time.monotonic()
    started.runtime.stop(handle, grace_s=0.5)
    took = time.monotonic() - began

    assert 0.5 <= took < 10
    assert started.runtime.wait(handle, 0) == Exit(128 + signal.SIGKILL)


SPAWN_CHILD = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', {child!r}])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(60)\n"
)
CHILD_SLEEPS = "import time; print('child ready', flush=True); time.sleep(60)"
CHILD_IGNORES_TERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('child ready', flush=True); time.sleep(60)"
)


def _start_family(started: Started, child: str) -> tuple[Handle, int]:
    handle = started.start(SPAWN_CHILD.format(child=child))
    lines = iter(started.runtime.output(handle))
    seen = [next(lines), next(lines)]  # the child's pid and its "ready", in either order
    assert "child ready" in seen
    pid = int(next(line for line in seen if line.isdigit()))
    started.pids.append(pid)
    assert alive(pid)
    return handle, pid


def test_stop_ends_the_whole_process_group(started: Started) -> None:
    handle, child = _start_family(started, CHILD_SLEEPS)

    started.runtime.stop(handle, grace_s=5)

    assert started.runtime.wait(handle, 0) == Exit(128 + signal.SIGTERM)
    assert wait_until(lambda: not alive(child)), "the job's child process survived stop()"


def test_stop_kills_a_child_that_ignores_sigterm(started: Started) -> None:
    handle, child = _start_family(started, CHILD_IGNORES_TERM)

    started.runtime.stop(handle, grace_s=1)

    assert started.runtime.wait(handle, 0) is not None
    assert wait_until(lambda: not alive(child), timeout_s=3), "child survived stop()"


def test_nonexistent_executable_is_refused(started: Started) -> None:
    launch = started.launch("", command=[str(started.tmp_path / "no-such-program")])

    with pytest.raises(LaunchRefused, match="no-such-program"):
        started.runtime.start(launch)

    assert started.runtime.find(JOB) == []


def test_unusable_checkpoint_dir_is_a_runtime_fault(started: Started) -> None:
    blocker = started.tmp_path / "a-file"
    blocker.write_text("not a directory")
    launch = started.launch("print('x')", checkpoint_dir=blocker / "ck")

    with pytest.raises(RuntimeFault):
        started.runtime.start(launch)


def test_gpu_ids_set_visible_devices(started: Started) -> None:
    handle = started.start(PRINT_ENV, gpu_ids=[1])

    env = env_of(list(started.runtime.output(handle)))

    assert started.runtime.wait(handle, WAIT_S) == Exit(0)
    assert env["CUDA_VISIBLE_DEVICES"] == "1"
    assert env["NVIDIA_VISIBLE_DEVICES"] == "1"


def test_several_gpu_ids_are_comma_separated(started: Started) -> None:
    handle = started.start(PRINT_ENV, gpu_ids=[0, 3])

    env = env_of(list(started.runtime.output(handle)))

    assert started.runtime.wait(handle, WAIT_S) == Exit(0)
    assert env["CUDA_VISIBLE_DEVICES"] == "0,3"


def test_standard_command_runs_the_train_script(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("import os; print('standard', os.environ['TRAINQ_ATTEMPT'])\n")
    runtime = ProcessRuntime(
        sys.executable,
        script,
        base_env={"PATH": os.environ["PATH"]},
        stop_grace_s=1,
        spool_dir=tmp_path / "spool",
    )
    launch = Launch(
        job_id=JOB,
        attempt=1,
        image="unused",
        command=None,
        env={},
        checkpoint_dir=tmp_path / "ck",
        worker="worker-1",
    )
    handle = runtime.start(launch)
    try:
        assert list(runtime.output(handle)) == ["standard 1"]
        assert runtime.wait(handle, WAIT_S) == Exit(0)
    finally:
        runtime.stop(handle, grace_s=0)
        runtime.wait(handle, WAIT_S)
        runtime.remove(handle)


def test_remove_forgets_the_attempt(started: Started) -> None:
    handle = started.start("print('x')")
    assert list(started.runtime.output(handle)) == ["x"]
    assert started.runtime.wait(handle, WAIT_S) == Exit(0)

    started.runtime.remove(handle)

    assert started.runtime.find(JOB) == []
    with pytest.raises(RuntimeFault):
        started.runtime.wait(handle, 0)
    with pytest.raises(RuntimeFault):
        list(started.runtime.output(handle))
    started.runtime.remove(handle)  # removing twice is harmless


def test_an_orphan_of_the_job_is_stopped_before_a_new_attempt_starts(started: Started) -> None:
    # What a SIGKILLed worker leaves behind: the job's process group, now nobody's child.
    orphan = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        env={**os.environ, "TRAINQ_JOB_ID": JOB},
        start_new_session=True,
    )
    other = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        env={**os.environ, "TRAINQ_JOB_ID": "some-other-job"},
        start_new_session=True,
    )
    try:
        handle = started.start("print('the new attempt')")

        assert orphan.wait(5) == -signal.SIGTERM
        assert other.poll() is None  # another job's process is left alone
        assert list(started.runtime.output(handle)) == ["the new attempt"]
    finally:
        for proc in (orphan, other):
            proc.kill()
            proc.wait()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root may lower a niceness")
def test_the_attempt_runs_at_normal_priority_under_a_niced_worker(started: Started) -> None:
    before = os.getpriority(os.PRIO_PROCESS, 0)
    os.setpriority(os.PRIO_PROCESS, 0, 10)  # as `trainq worker` does (TRAINQ_WORKER_NICE)
    try:
        # it looks after a moment: the runtime resets it just after it started
        handle = started.start("import os, time; time.sleep(0.3); print(os.nice(0))")
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, before)

    assert list(started.runtime.output(handle)) == ["0"]


def test_a_replayed_output_goes_on_after_the_position_even_inside_a_batch() -> None:
    first = CountedOutput(iter([["a", "b"], ["c", "d", "e"]]))
    batches = first.batches()
    assert next(batches) == ["a", "b"] and first.position == "2"

    # The same output read again in other chunks, from after the first reader's place.
    resumed = CountedOutput(iter([["a"], ["b", "c"], [], ["d", "e"]]), after=first.position)
    assert list(resumed.batches()) == [["c"], ["d", "e"]]
    assert resumed.position == "5"
    assert list(CountedOutput.of_lines(iter("xyz"), after="1")) == ["y", "z"]
