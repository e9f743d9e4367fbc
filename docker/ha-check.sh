#!/usr/bin/env bash
# The Compose profile "ha" end to end: start the stack (primary, replica, three
# sentinels) with throw-away secrets, run jobs, SIGKILL the primary under them, start
# it again once the sentinels have promoted the replica (a host coming back), and
# check that every job succeeds and the worker was never restarted. Prints the
# failover time (kill -> the sentinels' +switch-master) and the recovery time (kill ->
# the first job admitted after it); fails above RECOVERY_MAX_S (30 s).
# Usage: docker/ha-check.sh (or `make ha-check`, which builds the images first).
#
# Three jobs run when the primary dies and three are submitted right after the kill
# (refused with 503 until the old primary is back as a replica). The worker has more
# slots than jobs (HA_CHECK_CONCURRENCY, default 6), so the first admission after the
# kill waits for Redis, not for a slot; HA_CHECK_JOB_S (default 20) is a job's length.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
# shellcheck source=docker/compose-lib.sh
. docker/compose-lib.sh

work=$(mktemp -d /tmp/trainq-ha.XXXXXX)
project="trainq-ha-$$"
token="check-$RANDOM$RANDOM"
port=$(free_port)
cat >"$work/env" <<ENV
TRAINQ_REDIS_PASSWORD=pw-$RANDOM$RANDOM
TRAINQ_REDIS_SENTINEL_PASSWORD=spw-$RANDOM$RANDOM
TRAINQ_REDIS_SENTINELS=sentinel-1:26379,sentinel-2:26379,sentinel-3:26379
TRAINQ_API_TOKENS=$token
TRAINQ_FLOWER_BASIC_AUTH=admin:pw-$RANDOM
TRAINQ_DATA_DIR=$work/data
TRAINQ_API_PORT=$port
TRAINQ_FLOWER_PORT=$(free_port)
TRAINQ_WORKER_CONCURRENCY=${HA_CHECK_CONCURRENCY:-6}
ENV
stack() { compose --env-file "$work/env" -p "$project" --profile ha "$@"; }
down() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    stack logs --no-color --timestamps >"/tmp/$project.log" 2>&1 || true
    say "ha-check failed (exit $rc); the stack's logs are in /tmp/$project.log"
  fi
  stack down -v >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap down EXIT

stack up -d
containers="{"
for service in redis redis-replica sentinel-1 sentinel-2 sentinel-3 worker api; do
  id=$(stack ps -q "$service")
  [ -n "$id" ] || { say "ha-check: no container for $service"; exit 1; }
  containers+="\"$service\": \"$id\","
done
export HA_CONTAINERS="${containers%,}}"
say "waiting for the API on 127.0.0.1:$port and for the sentinels to agree..."

.venv/bin/python - "$port" "$token" "${HA_CHECK_JOB_S:-20}" "${HA_CHECK_CONCURRENCY:-6}" <<'PY'
import json, os, subprocess, sys, threading, time
from datetime import datetime

import httpx
from trainq.testing import wait_until

RECOVERY_MAX_S = 30.0
MASTER = "trainq"
SENTINELS = ("sentinel-1", "sentinel-2", "sentinel-3")
JOB_S, CONCURRENCY = int(sys.argv[3]), int(sys.argv[4])
# A light job of JOB_S seconds (the standard image's Python, no training).
JOB = {"command": ["python3", "-c",
                   f"import time\nfor i in range({JOB_S}): print(i, flush=True); time.sleep(1)"]}
base, auth = f"http://127.0.0.1:{sys.argv[1]}", {"Authorization": f"Bearer {sys.argv[2]}"}
ids: dict[str, str] = json.loads(os.environ["HA_CONTAINERS"])


def fail(message: str) -> None:
    print(f"ha-check: FAILED: {message}", file=sys.stderr, flush=True)
    os._exit(1)  # also from a thread


def docker(*args: str, check: bool = True) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)
    if check and done.returncode != 0:
        fail(f"docker {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def cli(service: str, *command: str) -> list[str] | None:
    """redis-cli in a service's container (REDISCLI_AUTH there holds its password)."""
    port = "26379" if service.startswith("sentinel") else "6379"
    done = subprocess.run(["docker", "exec", ids[service], "redis-cli", "-p", port, *command],
                          capture_output=True, text=True, timeout=30)
    return done.stdout.split() if done.returncode == 0 else None


def primary_named(service: str) -> str | None:
    answer = cli(service, "sentinel", "get-master-addr-by-name", MASTER)
    return answer[0] if answer and len(answer) == 2 else None


def sentinels_name(primary: str) -> bool:
    return all(primary_named(s) == primary for s in SENTINELS)


def sentinels_agree(primary: str) -> bool:
    """Each sentinel names ``primary``, knows the two others and one replica."""
    for s in SENTINELS:
        answer = cli(s, "sentinel", "master", MASTER) or []
        state = dict(zip(answer[::2], answer[1::2]))
        if (state.get("ip"), state.get("flags")) != (primary, "master"):
            return False
        if (state.get("num-other-sentinels"), state.get("num-slaves")) != ("2", "1"):
            return False
    return True


def replicating(service: str, primary: str) -> bool:
    """``service`` is a replica of ``primary`` and its link is up."""
    lines = cli(service, "info", "replication") or []
    info = dict(line.split(":", 1) for line in lines if ":" in line)
    return (info.get("role"), info.get("master_host"), info.get("master_link_status")) == (
        "slave", primary, "up")


def healthy() -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def restarts(service: str) -> str:
    return docker("inspect", "-f", "{{.RestartCount}} {{.State.StartedAt}}", ids[service]).strip()


def record(job: str) -> dict:
    while True:
        try:
            return httpx.get(f"{base}/train/{job}", headers=auth, timeout=15).raise_for_status().json()
        except httpx.HTTPError:  # a 503 while Redis fails over: ask again
            time.sleep(0.5)


refusals: dict[str, int] = {}


def submit(deadline: float) -> tuple[str, float]:
    """POST /train until it is accepted (503 while Redis fails over): (id, when)."""
    while True:
        try:
            answer = httpx.post(f"{base}/train", json=JOB, headers=auth, timeout=30)
            if answer.status_code in (200, 201, 202):
                return answer.json()["id"], time.time()
            if answer.status_code < 500 and answer.status_code != 429:
                fail(f"POST /train answered {answer.status_code}: {answer.text}")
            why = str(answer.status_code)
        except httpx.HTTPError as error:
            why = type(error).__name__
        refusals[why] = refusals.get(why, 0) + 1
        if time.time() > deadline:
            fail(f"no submit accepted in time after the kill (refusals: {refusals})")
        time.sleep(0.2)


try:
    wait_until(healthy, 240, "the stack's /health to answer 200")
    wait_until(lambda: sentinels_agree("redis"), 120,
               "the three sentinels to agree on redis with one replica")
    wait_until(lambda: replicating("redis-replica", "redis"), 60, "redis-replica to sync")
except TimeoutError as error:
    fail(str(error))
worker_before = restarts("worker")
api_before = restarts("api")
print(f"ha-check: stack up; sentinels agree on redis; worker {worker_before}", flush=True)

# Three jobs running when the primary dies; three more submitted right after the kill.
jobs = [submit(time.time() + 60)[0] for _ in range(3)]


def launched(job: str) -> bool:
    """Running in its container (the attempt has the container's id)."""
    r = record(job)
    return r["status"] == "running" and bool(r["attempts"]) and bool(r["attempts"][-1]["handle"])


try:
    wait_until(lambda: all(launched(j) for j in jobs), 180, "the first three jobs to run")
except TimeoutError as error:
    fail(str(error))
time.sleep(2)  # a few seconds into their run

killed_at = time.time()
docker("kill", ids["redis"])  # SIGKILL: the primary's host died
print(f"ha-check: primary killed with 3 jobs running", flush=True)
later: list[tuple[str, float]] = []


def submit_after_the_kill() -> None:
    for _ in range(3):
        later.append(submit(killed_at + 120))


submitter = threading.Thread(target=submit_after_the_kill, daemon=True)
submitter.start()

try:
    wait_until(lambda: sentinels_name("redis-replica"), 60,
               "the sentinels to promote redis-replica", interval_s=0.2)
except TimeoutError as error:
    fail(str(error))
promoted_seen = time.time() - killed_at
state_after_kill = docker("inspect", "-f", "{{.State.Status}} {{.RestartCount}}", ids["redis"]).strip()
docker("start", ids["redis"])  # the old primary's host comes back
restarted_at = time.time() - killed_at
try:
    wait_until(lambda: replicating("redis", "redis-replica"), 90,
               "the old primary to replicate the new one", interval_s=0.2)
except TimeoutError as error:
    fail(str(error))
rejoined = time.time() - killed_at

# The failover as the sentinels logged it: the first +switch-master (Docker's timestamps).
switched: list[float] = []
for s in SENTINELS:
    for line in docker("logs", "-t", ids[s]).splitlines():
        if "+switch-master" in line:
            stamp = line.split()[0]  # 2024-05-01T10:00:00.123456789Z
            day, _, fraction = stamp.rstrip("Z").partition(".")
            switched.append(datetime.fromisoformat(f"{day}.{fraction[:6]:0<6}+00:00").timestamp())
failover = (min(switched) - killed_at) if switched else promoted_seen

submitter.join(150)
if submitter.is_alive() or len(later) != 3:
    fail(f"the three submits after the kill did not all go through (refusals: {refusals})")
jobs += [job for job, _ in later]
try:
    final = wait_until(
        lambda: (rs := [record(j) for j in jobs])
        and all(r["status"] in ("succeeded", "failed", "cancelled", "timed_out") for r in rs)
        and rs,
        240, "every job to finish",
    )
except TimeoutError as error:
    fail(f"{error}: {[(j, record(j)['status']) for j in jobs]}")
succeeded = sum(r["status"] == "succeeded" for r in final)
admitted_after = [r["admitted_at"] for r in final if (r["admitted_at"] or 0) > killed_at]
if not admitted_after:
    fail("no job was admitted after the kill")
recovery = min(admitted_after) - killed_at
first_accepted = min(when for _, when in later) - killed_at

problems = []
if succeeded != len(jobs):
    problems.append("not every job succeeded: "
                    + ", ".join(f"{r['id']} {r['status']} ({r.get('error')})" for r in final
                                if r["status"] != "succeeded"))
if (worker_after := restarts("worker")) != worker_before:
    problems.append(f"the worker was restarted: {worker_before} -> {worker_after}")
if recovery > RECOVERY_MAX_S:
    problems.append(f"recovery {recovery:.1f} s is above {RECOVERY_MAX_S:.0f} s")
if not sentinels_agree("redis-replica"):
    problems.append("the sentinels do not all follow redis-replica with redis as its replica")
api_after = restarts("api")

status, restart_count = state_after_kill.split()
if status == "exited":
    down = "stayed down (docker kill counts as a manual stop for the restart policy)"
else:
    down = f"was {status} (Docker's restart count {restart_count})"
print(f"ha-check: after the kill the old primary {down}; sentinels named the replica {promoted_seen:.1f} s, old primary started again "
      f"{restarted_at:.1f} s and replicating {rejoined:.1f} s after the kill; first submit "
      f"accepted {first_accepted:.1f} s after; refused submits while failing over: "
      f"{refusals or 'none'}; API {'not restarted' if api_after == api_before else 'RESTARTED'}",
      flush=True)
summary = (f"{succeeded}/{len(jobs)} jobs succeeded; failover {failover:.1f} s; recovery "
           f"(kill -> first admission) {recovery:.1f} s; old primary is a replica again")
for problem in problems:
    print(f"ha-check: FAILED: {problem}", file=sys.stderr, flush=True)
if problems:
    print(f"ha-check: FAILED ({summary})", flush=True)
    sys.exit(1)
print(f"ha-check: {summary}; worker not restarted (concurrency {CONCURRENCY}, jobs of "
      f"{JOB_S} s)", flush=True)
PY
