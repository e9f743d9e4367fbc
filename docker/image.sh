#!/usr/bin/env bash
# Builds trainq's images; tags come from trainq's settings (TRAINQ_*_IMAGE).
#
#   docker/image.sh train     the standard training image (TRAINQ_DEFAULT_IMAGE)
#   docker/image.sh service   the worker/Flower/API image (TRAINQ_SERVICE_IMAGE)
#   docker/image.sh redis     Redis for docker-compose.yml (TRAINQ_REDIS_IMAGE)
#
# The base is the registry's Python image when a registry answers, else a Debian
# bookworm base built here with debootstrap (docker/base-image.sh). Python packages
# enter an image only from a wheelhouse that the host fills with `pip download`.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
say() { printf '%s\n' "$*" >&2; }
# pip's notes about this host's own package mirrors are noise here.
pip() { "$PY" -m pip "$@" 2> >(grep -v '^WARNING: Location' >&2); }
setting() { "$PY" -c "from trainq.config import get_settings; print(get_settings().$1)"; }
# The training image's Python packages: pyproject.toml's `torch` extra, the same pins.
TRAINING_PACKAGES="torch==2.13.0 numpy==2.4.6"

base_image() {
  local registry offline
  registry=$(setting registry_base_image)
  offline=$(setting offline_base_image)
  if docker image inspect "$registry" >/dev/null 2>&1; then echo "$registry"; return; fi
  if docker pull -q "$registry" >/dev/null 2>&1; then echo "$registry"; return; fi
  if ! docker image inspect "$offline" >/dev/null 2>&1; then
    say "no registry answers: building the base image $offline from Debian packages"
    bash docker/base-image.sh "$offline"
  fi
  echo "$offline"
}

build() {  # build DOCKERFILE CONTEXT TAG
  local base; base=$(base_image)
  say "building $3 FROM $base..."
  docker build -q -f "$1" --build-arg "BASE=$base" -t "$3" "$2" >/dev/null
  say "built $3 ($(docker image inspect -f '{{.Id}}' "$3"))"
}

case "${1:-}" in
  train)
    ctx=build/train-context
    mkdir -p "$ctx/wheelhouse"
    printf '%s\n' $TRAINING_PACKAGES >"$ctx/wheelhouse/requirements.txt"
    pip download -q --only-binary=:all: -d "$ctx/wheelhouse" -r "$ctx/wheelhouse/requirements.txt"
    cp train.py "$ctx/train.py"
    build docker/train.Dockerfile "$ctx" "$(setting default_image)"
    ;;
  service)
    ctx=build/service-context
    rm -rf "$ctx" && mkdir -p "$ctx/wheelhouse"
    pip wheel -q --no-deps -w "$ctx/wheelhouse" .
    # Debian bookworm has Python 3.11.2, and redis needs async-timeout below 3.11.3:
    # the host's newer Python would not download it.
    whl=$(ls "$ctx"/wheelhouse/trainq-*.whl)
    pip download -q --only-binary=:all: -d "$ctx/wheelhouse" \
      "trainq[gpu] @ file://$PWD/$whl" 'async-timeout>=4.0.3'

    build docker/service.Dockerfile "$ctx" "$(setting service_image)"
    ;;
  redis)
    ctx=build/redis-context
    mkdir -p "$ctx"
    build docker/redis.Dockerfile "$ctx" "$(setting redis_image)"
    ;;
  *) say "usage: $0 train|service|redis"; exit 2 ;;
esac
