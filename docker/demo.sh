#!/usr/bin/env bash
# `make demo`: Redis (installed and started if none answers), one worker on the
# configured runtime (Docker by default: `make image` ran first), one real 2-epoch
# training job with live progress, its result and logs; then stops what it started
# and prints the elapsed time.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
started=${DEMO_STARTED:-$(date +%s)}
mkdir -p .run
BIN=.venv/bin
worker_pid=""

cleanup() {
  if [ -n "$worker_pid" ] && kill -0 "$worker_pid" 2>/dev/null; then
    kill -TERM "$worker_pid"
    wait "$worker_pid" 2>/dev/null || true
    echo "stopped the demo worker"
  fi
  [ -n "$started_redis" ] && docker/host.sh redis-down
  return 0
}
trap cleanup EXIT

# Stop at the end only a Redis that this demo started.
started_redis=""
[ -f .run/redis.pid ] && had_redis=yes || had_redis=""
docker/host.sh redis-up
[ -z "$had_redis" ] && [ -f .run/redis.pid ] && started_redis=yes
name="demo-$$@$(hostname)"
"$BIN/trainq" worker --name "$name" >.run/demo-worker.log 2>&1 &
worker_pid=$!
echo "started a worker ($name), log: .run/demo-worker.log"
for _ in $(seq 60); do
  "$BIN/celery" -A trainq inspect ping -d "$name" --timeout 1 >/dev/null 2>&1 && break
  kill -0 "$worker_pid" 2>/dev/null || { cat .run/demo-worker.log; exit 1; }
done

echo "submitting a 2-epoch training job..."
status=0
"$BIN/trainq" submit --epochs 2 --name demo --wait --json >.run/demo-job.json || status=$?
job_id=$("$BIN/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' .run/demo-job.json)
"$BIN/trainq" status "$job_id"
"$BIN/python" - .run/demo-job.json <<'PY'
import json, sys
job = json.load(open(sys.argv[1]))
assert job["status"] == "succeeded", f"the demo job ended {job['status']}: {job['error']}"
first, final = job["result"]["metrics"][0]["loss"], job["result"]["final_loss"]
assert final < first, f"final loss {final} is not below the first epoch's {first}"
print(f"\nsucceeded: loss fell from {first:.4f} (epoch 1) to {final:.4f} (epoch 2)")
print(f"job log:    {job['log_path']}")
print(f"checkpoint: {job['result']['checkpoint_path']}")
assert any(a["path"] == job["result"]["model"] for a in job["artifacts"]), job["artifacts"]
PY
echo "artifacts (trainq artifacts $job_id; --download DIR to fetch them):"
"$BIN/trainq" artifacts "$job_id"
runtime=$("$BIN/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["attempts"][-1]["runtime"])' .run/demo-job.json)
echo "ran in:     $runtime runtime"
echo "demo finished in $(( $(date +%s) - started )) s, set-up included"
exit "$status"
