#!/usr/bin/env bash
# Host set-up for trainq on Debian/Ubuntu: install and start what is missing.
#
#   docker/host.sh redis-bin   install redis-server and redis-sentinel if missing
#   docker/host.sh redis-up    make the configured Redis answer: start a local
#                              redis-server (installing it if needed) unless one
#                              already answers; records what it started in .run/
#   docker/host.sh redis-down  stop the redis-server that redis-up started, if any
#   docker/host.sh docker-up   make `docker info` work: install docker.io if needed and
#                              start dockerd in the background if none answers
#   docker/host.sh compose-bin install a Compose client (Debian's docker-compose) if
#                              neither `docker compose` nor `docker-compose` works
#   docker/host.sh ab-bin      install ApacheBench (apache2-utils), the benchmarks'
#                              HTTP load generator, if it is missing
#   docker/host.sh chromium-bin install Debian's chromium (the web page's browser tests
#                              drive it through Playwright) if it is missing
#
# As root, missing Debian packages are installed with apt-get; otherwise the script
# prints exactly what to install and exits 1. Settings come from trainq itself
# (TRAINQ_REDIS_URL), read through the project's virtualenv.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RUN=.run
mkdir -p "$RUN"

say() { printf '%s\n' "$*" >&2; }

apt_install() {  # apt_install PACKAGE...
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    say "missing: $*. Install it, e.g.: sudo apt-get install -y $*"
    exit 1
  fi
  say "installing $* from Debian packages..."
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >"$RUN/apt.log" 2>&1; then
    apt-get update -qq >>"$RUN/apt.log" 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >>"$RUN/apt.log" 2>&1 \
      || { say "apt-get install $* failed; see $RUN/apt.log"; exit 1; }
  fi
}

redis_url() { "$PY" -c 'from trainq.config import get_settings; print(get_settings().redis_url)'; }

redis_answers() {
  "$PY" - "$1" <<'PY' 2>/dev/null
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1).ping()
PY
}

redis_bin() {  # redis-sentinel too: the failover tests run sentinels
  command -v redis-server >/dev/null || apt_install redis-server
  command -v redis-sentinel >/dev/null || apt_install redis-sentinel
}

redis_up() {
  local url; url=$(redis_url)
  if redis_answers "$url"; then say "Redis answers at $url"; return; fi
  local hostport port
  hostport=$("$PY" -c 'import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(p.hostname or "localhost", p.port or 6379)' "$url")
  port=${hostport#* }
  case "${hostport% *}" in
    localhost|127.0.0.1|::1) ;;
    *) say "Redis at $url does not answer, and it is not on this host: start it there."; exit 1 ;;
  esac
  redis_bin
  redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --dir "$PWD/$RUN" \
    --pidfile "$PWD/$RUN/redis.pid" --logfile "$PWD/$RUN/redis.log" \
    --appendonly yes --appendfsync everysec --save ""
  for _ in $(seq 50); do redis_answers "$url" && break; sleep 0.1; done
  redis_answers "$url" || { say "redis-server did not start; see $RUN/redis.log"; exit 1; }
  say "started redis-server on port $port (pid $(cat "$RUN/redis.pid"))"
}

redis_down() {
  [ -f "$RUN/redis.pid" ] || return 0
  local pid; pid=$(cat "$RUN/redis.pid")
  kill "$pid" 2>/dev/null && say "stopped redis-server (pid $pid)"
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$RUN/redis.pid"
}

docker_up() {
  if docker info >/dev/null 2>&1; then return; fi
  command -v dockerd >/dev/null || apt_install docker.io
  command -v docker >/dev/null || apt_install docker.io
  if [ "$(id -u)" -ne 0 ]; then
    say "the Docker engine does not answer: start it (sudo systemctl start docker, or sudo dockerd &)"
    exit 1
  fi
  say "starting dockerd (log: $RUN/dockerd.log)..."
  nohup dockerd >"$RUN/dockerd.log" 2>&1 &
  for _ in $(seq 150); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
  docker info >/dev/null 2>&1 || { say "dockerd did not start; see $RUN/dockerd.log"; tail -5 "$RUN/dockerd.log" >&2; exit 1; }
  say "dockerd is up"
}

compose_bin() {
  docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null \
    || apt_install docker-compose
}

case "${1:-}" in
  redis-bin) redis_bin ;;
  redis-up) redis_up ;;
  redis-down) redis_down ;;
  docker-up) docker_up ;;
  compose-bin) compose_bin ;;
  ab-bin) command -v ab >/dev/null || apt_install apache2-utils ;;
  chromium-bin) command -v chromium >/dev/null || apt_install chromium ;;
  *) say "usage: $0 redis-bin|redis-up|redis-down|docker-up|compose-bin|ab-bin|chromium-bin"; exit 2 ;;
esac
