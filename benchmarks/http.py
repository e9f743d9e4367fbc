"""HTTP load from ApacheBench (``ab``, Debian's apache2-utils; ``make bench`` installs it).

The load generator shares the 2 cores with the server it measures, so it must cost
far less per request than the server: a Python client took half a core at 500
requests/s and capped the figure; ``ab`` is C.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile


def post_rate(
    url: str, headers: dict[str, str], body: bytes, *, requests: int, clients: int
) -> float:
    """Requests per second of ``requests`` POSTs of ``body`` over ``clients`` keep-alive
    connections; raises unless every reply was a 2xx."""
    ab = shutil.which("ab")
    if ab is None:
        raise RuntimeError("ab is missing: bash docker/host.sh ab-bin (make bench does)")
    with tempfile.NamedTemporaryFile(suffix=".json") as payload:
        payload.write(body)
        payload.flush()
        command = [ab, "-q", "-k", "-n", str(requests), "-c", str(clients), "-p", payload.name]
        content_type = headers.get("Content-Type", "application/json")
        command += ["-T", content_type]
        for name, value in headers.items():
            if name.lower() != "content-type":
                command += ["-H", f"{name}: {value}"]
        out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    failed = re.search(r"^Failed requests:\s+(\d+)", out, re.MULTILINE)
    if failed is None or int(failed.group(1)) or "Non-2xx responses" in out:
        raise RuntimeError(f"ab saw failed or non-2xx replies:\n{out}")
    rate = re.search(r"^Requests per second:\s+([\d.]+)", out, re.MULTILINE)
    assert rate is not None, out
    return float(rate.group(1))
