"""A real S3-compatible server for tests: moto's server, as a separate process."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from types import TracebackType
from typing import Any, Self

from trainq.testing import free_port

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"


def store_settings(url: str, endpoint_url: str) -> dict[str, str]:
    """trainq's settings (field names) of an artifact store ``url`` on the server at
    ``endpoint_url``; :func:`store_env` gives them as variables."""
    return {
        "artifact_url": url,
        "artifact_s3_endpoint_url": endpoint_url,
        "artifact_s3_region": REGION,
        "artifact_s3_access_key_id": ACCESS_KEY,
        "artifact_s3_secret_access_key": SECRET_KEY,
    }


def store_env(url: str, endpoint_url: str) -> dict[str, str]:
    """The same settings as ``TRAINQ_*`` variables, for a trainq process."""
    return {f"TRAINQ_{name.upper()}": v for name, v in store_settings(url, endpoint_url).items()}


class S3Server:
    """``python -m moto.server`` on a free loopback port; ``endpoint_url`` once started.

    Buckets live in the server's memory: gone when it stops.
    """

    def __init__(self, port: int | None = None, start_timeout_s: float = 30.0) -> None:
        self.port = port or free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        # Its request log: a file, never a pipe that nobody reads (the server would block).
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop)

    def start(self) -> Self:
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self.proc = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout_s
        while not self._answers():
            if self.proc.poll() is not None:
                self._log.seek(0)
                output = self._log.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"moto server exited ({self.proc.returncode}): {output}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"moto server at {self.endpoint_url} did not answer in time")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None
        self._log.close()

    def client(self) -> Any:
        """A boto3 S3 client of this server."""
        import boto3  # only for the tests that use S3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def make_bucket(self, name: str) -> str:
        """Create the bucket ``name``; its name."""
        self.client().create_bucket(Bucket=name)
        return name

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint_url + "/moto-api/", timeout=1):
                return True
        except urllib.error.HTTPError:
            return True  # it answered, if not with 200
        except OSError:
            return False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
