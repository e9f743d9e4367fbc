# Shared by compose-check.sh and ha-check.sh (sourced, from the repository root).
say() { printf '%s\n' "$*" >&2; }
# Compose v2 (`docker compose`) where installed, else Debian's docker-compose.
compose() {
  if docker compose version >/dev/null 2>&1; then docker compose "$@"; else docker-compose "$@"; fi
}
free_port() { .venv/bin/python -c 'from trainq.testing import free_port; print(free_port())'; }
