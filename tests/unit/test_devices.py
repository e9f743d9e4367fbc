"""GPU devices: --gpus parsing, simulation, allotment to jobs, and the runtimes' variables."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from trainq.errors import GpuUnavailable, LaunchRefused
from trainq.jobs.spec import JobSpec
from trainq.runtime.base import device_env
from trainq.runtime.container import device_requests
from trainq.worker.devices import Gpus, allot, parse_ids, resolve


@pytest.mark.parametrize(("text", "ids"), [("0", [0]), ("2,3", [2, 3]), (" 1, 0 ", [1, 0])])
def test_parse_ids(text: str, ids: list[int]) -> None:
    assert parse_ids(text) == ids


@pytest.mark.parametrize(
    ("text", "rule"),
    [("", "comma-separated"), ("a", "comma-separated"), ("0,,1", "comma-separated"),
     ("-1", "comma-separated"), ("1,1", "duplicated")],
)  # fmt: skip
def test_parse_ids_refuses_malformed_lists(text: str, rule: str) -> None:
    with pytest.raises(ValueError, match=rule):
        parse_ids(text)


def test_simulated_ids_are_taken_as_given_without_nvml() -> None:
    assert resolve("2,3", simulate=True) == Gpus((2, 3))
    assert resolve(None, simulate=True) == Gpus(())
    assert not resolve(None, simulate=False)


def test_auto_needs_nvml_even_when_simulating() -> None:
    with pytest.raises(GpuUnavailable, match="name the simulated ids"):
        resolve("auto", simulate=True)


@pytest.fixture
def no_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    """NVML absent, whether or not nvidia-ml-py is installed here (`make gpu-check`
    installs it): ``import pynvml`` fails as it does where the package is missing."""
    monkeypatch.setitem(sys.modules, "pynvml", None)


@pytest.mark.parametrize("option", ["0", "auto"])
def test_real_gpus_without_nvml_say_what_to_install(no_nvml: None, option: str) -> None:
    with pytest.raises(GpuUnavailable, match=r"nvidia-ml-py.*TRAINQ_SIMULATE_GPUS=1"):
        resolve(option, simulate=False)


class _DriverlessNvml(types.ModuleType):
    """pynvml installed on a host without an NVIDIA driver: nvmlInit fails."""

    class NVMLError(Exception):
        pass

    def __init__(self) -> None:
        super().__init__("pynvml")

    def nvmlInit(self) -> None:
        raise self.NVMLError("NVML Shared Library Not Found")


@pytest.mark.parametrize("option", ["0", "auto"])
def test_real_gpus_without_a_driver_ask_for_one(
    monkeypatch: pytest.MonkeyPatch, option: str
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _DriverlessNvml())
    with pytest.raises(GpuUnavailable, match=r"Library Not Found\): is an NVIDIA driver installed"):
        resolve(option, simulate=False)


def test_bad_gpus_option_names_the_option() -> None:
    with pytest.raises(GpuUnavailable, match=r"^--gpus: duplicated"):
        resolve("0,0", simulate=True)


def spec(**fields: Any) -> JobSpec:
    return JobSpec.parse(fields)


def test_a_count_job_gets_every_device_of_its_worker() -> None:
    owned = Gpus((2, 3), ("GPU-a", "GPU-b"))
    assert allot(spec(gpu=True, gpus=2), owned, "w", "gpus.2") == owned


def test_a_pinned_job_gets_its_devices_in_its_own_order() -> None:
    owned = Gpus((2, 3), ("GPU-a", "GPU-b"))
    assert allot(spec(gpu=True, gpu_ids=[3, 2]), owned, "w", "q") == Gpus(
        (3, 2), ("GPU-b", "GPU-a")
    )
    assert allot(spec(gpu=True, gpu_ids=[1]), Gpus((1,)), "w", "q") == Gpus((1,))


def test_a_cpu_job_gets_no_device() -> None:
    assert allot(spec(), Gpus((0,)), "w", "q") == Gpus(())


@pytest.mark.parametrize(
    ("fields", "owned"),
    [
        ({"gpu": True, "gpu_ids": [1]}, Gpus((0,))),
        ({"gpu": True}, Gpus(())),
        ({"gpu": True, "gpus": 1}, Gpus((0, 1))),
    ],
)
def test_a_gpu_job_on_the_wrong_worker_is_refused(fields: dict[str, Any], owned: Gpus) -> None:
    with pytest.raises(LaunchRefused, match="sent to queue 'cpu'"):
        allot(spec(**fields), owned, "worker w", "cpu")


def test_process_variables_name_the_host_ids() -> None:
    env = device_env([1, 3], in_container=False)
    assert env == {
        "CUDA_VISIBLE_DEVICES": "1,3",
        "NVIDIA_VISIBLE_DEVICES": "1,3",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "TRAINQ_GPU_IDS": "1,3",
    }


def test_container_variables_follow_the_renumbering_inside_it() -> None:
    env = device_env([1, 3], in_container=True)
    assert env["NVIDIA_VISIBLE_DEVICES"] == "1,3"  # the host's ids, as the device request
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1"  # what CUDA sees inside the container
    assert env["TRAINQ_GPU_IDS"] == "1,3"


def test_cpu_jobs_see_no_gpu() -> None:
    assert device_env([], in_container=False) == {"CUDA_VISIBLE_DEVICES": ""}
    assert device_env([], in_container=True)["NVIDIA_VISIBLE_DEVICES"] == "void"


def test_device_request_names_exact_ids_never_a_count() -> None:
    (request,) = device_requests([1, 3], simulate=False)
    assert request["DeviceIDs"] == ["1", "3"]
    assert request["Capabilities"] == [["gpu"]]
    assert request["Count"] in (None, 0)
    assert device_requests([1], simulate=True) == []
    assert device_requests([], simulate=False) == []
