#!/bin/sh
# A Redis Sentinel of docker-compose.yml's "ha" profile (run by trainq-redis's own
# redis-server, `--sentinel`). Compose mounts this file and runs `sh` on it.
#
# A sentinel rewrites its config file (the primary it follows now, the replicas and
# sentinels it knows), so the file is written here, in the container's /data, only
# when absent: a restarted container keeps what its sentinel learnt. A new container
# (`up` after a change) asks the other sentinels, then the two servers, which one is
# primary now, so that it never follows a primary that has been demoted.
#
# Environment (docker-compose.yml sets it): TRAINQ_REDIS_PASSWORD (Redis's requirepass,
# on the primary and the replica), TRAINQ_REDIS_SENTINEL_PASSWORD (this sentinel's own
# requirepass: clients and the other sentinels use it), TRAINQ_REDIS_MASTER_NAME
# (default trainq), SENTINEL_ANNOUNCE (this sentinel's name on the network, e.g.
# sentinel-1), SENTINEL_MONITOR ("host port quorum": the first primary), the timings
# SENTINEL_DOWN_AFTER_MS, SENTINEL_FAILOVER_TIMEOUT_MS and SENTINEL_PARALLEL_SYNCS,
# SENTINEL_PEERS and REDIS_SERVERS (space-separated host names).
set -eu
say() { printf 'sentinel.sh: %s\n' "$*" >&2; }

: "${TRAINQ_REDIS_PASSWORD:?set TRAINQ_REDIS_PASSWORD in .env}"
if [ -z "${TRAINQ_REDIS_SENTINEL_PASSWORD:-}" ]; then
  say "set TRAINQ_REDIS_SENTINEL_PASSWORD in .env: the ha profile's sentinels need a password"
  exit 1
fi
name=${TRAINQ_REDIS_MASTER_NAME:-trainq}
me=${SENTINEL_ANNOUNCE:?SENTINEL_ANNOUNCE: this sentinel host name}
peers=${SENTINEL_PEERS:-sentinel-1 sentinel-2 sentinel-3}
# shellcheck disable=SC2086  # word splitting wanted: "host port quorum"
set -- ${SENTINEL_MONITOR:-redis 6379 2}
first=$1 port=$2 quorum=$3
servers=${REDIS_SERVERS:-$first}
conf=/data/sentinel.conf

# A value in redis.conf's syntax: double quotes, backslashes and quotes escaped.
quoted() { printf '"%s"' "$(printf '%s' "$1" | sed 's/[\\"]/\\&/g')"; }

# The primary the other sentinels name now; else the server that says it is one;
# else the first primary (a first start: it is up before the sentinels).
current_primary() {
  for peer in $peers; do
    [ "$peer" = "$me" ] && continue
    answer=$(REDISCLI_AUTH=$TRAINQ_REDIS_SENTINEL_PASSWORD timeout 3 \
      redis-cli -h "$peer" -p 26379 sentinel get-master-addr-by-name "$name" 2>/dev/null \
      | head -n 1) || true
    case "$answer" in ''|*ERR*|*NOAUTH*|*WRONGPASS*) ;; *) echo "$answer"; return ;; esac
  done
  for server in $servers; do
    role=$(REDISCLI_AUTH=$TRAINQ_REDIS_PASSWORD timeout 3 \
      redis-cli -h "$server" -p "$port" role 2>/dev/null | head -n 1) || true
    [ "$role" = master ] && { echo "$server"; return; }
  done
  echo "$first"
}

if [ ! -s "$conf" ]; then
  primary=$(current_primary)
  say "first start: $me monitors $name at $primary:$port (quorum $quorum)"
  umask 077
  cat >"$conf.new" <<CONF
port 26379
dir /data
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $me
sentinel announce-port 26379
requirepass $(quoted "$TRAINQ_REDIS_SENTINEL_PASSWORD")
sentinel monitor $name $primary $port $quorum
sentinel auth-pass $name $(quoted "$TRAINQ_REDIS_PASSWORD")
sentinel down-after-milliseconds $name ${SENTINEL_DOWN_AFTER_MS:-2000}
sentinel failover-timeout $name ${SENTINEL_FAILOVER_TIMEOUT_MS:-10000}
sentinel parallel-syncs $name ${SENTINEL_PARALLEL_SYNCS:-1}
CONF
  mv "$conf.new" "$conf"
fi
exec redis-server "$conf" --sentinel
