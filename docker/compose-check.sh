#!/usr/bin/env bash
# The Compose stack end to end: build its images with the project's scripts, start
# it with throw-away secrets, submit a job through the API, wait for it to succeed,
# then tear everything down. Usage: docker/compose-check.sh (or `make compose-check`).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
# shellcheck source=docker/compose-lib.sh
. docker/compose-lib.sh

work=$(mktemp -d /tmp/trainq-compose.XXXXXX)
project="trainq-check-$$"
token="check-$RANDOM$RANDOM"
port=$(free_port)
cat >"$work/env" <<ENV
TRAINQ_REDIS_PASSWORD=pw-$RANDOM$RANDOM
TRAINQ_API_TOKENS=$token
TRAINQ_FLOWER_BASIC_AUTH=admin:pw-$RANDOM
TRAINQ_DATA_DIR=$work/data
TRAINQ_API_PORT=$port
TRAINQ_FLOWER_PORT=$(free_port)
ENV
down() { compose --env-file "$work/env" -p "$project" down -v >/dev/null 2>&1 || true; rm -rf "$work"; }
trap down EXIT

compose --env-file "$work/env" -p "$project" up -d
say "waiting for the API on 127.0.0.1:$port..."
.venv/bin/python - "$port" "$token" <<'PY'
import sys, time
import httpx
from trainq.testing import wait_until

base, auth = f"http://127.0.0.1:{sys.argv[1]}", {"Authorization": f"Bearer {sys.argv[2]}"}

def healthy():
    try:
        return httpx.get(f"{base}/health", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False

wait_until(healthy, 120, "the stack's /health to answer 200")
assert httpx.post(f"{base}/train", json={"epochs": 2}).status_code == 401
job = httpx.post(f"{base}/train", json={"epochs": 2}, headers=auth).json()["id"]
done = wait_until(
    lambda: (r := httpx.get(f"{base}/train/{job}", headers=auth).json())["status"]
    in ("succeeded", "failed", "cancelled", "timed_out") and r,
    300, f"job {job} to finish",
)
assert done["status"] == "succeeded", done
assert done["progress"]["epoch"] == 2
print(f"compose stack: job {job} succeeded, epoch {done['progress']['epoch']}/2")
PY
