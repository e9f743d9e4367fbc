"""Private Redis servers on loopback ports: one alone (:class:`RedisServer`), or a
primary with replicas watched by sentinels (:class:`SentinelCluster`), which promote a
replica when the primary dies, as in ``docker-compose.yml``'s ``ha`` profile."""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import redis
from redis.sentinel import Sentinel

from trainq.testing.polling import free_port, wait_until

# The sentinels' timings (docker/redis/sentinel.conf has the same): a primary that does
# not answer for DOWN_AFTER_MS is down once a quorum agrees, and a replica is promoted.
DOWN_AFTER_MS = 2_000
FAILOVER_TIMEOUT_MS = 10_000


class RedisServer:
    """A ``redis-server`` on a free loopback port, its files (and redis.conf) in
    ``folder``; ``options`` are more redis.conf lines (e.g. ``replicaof ...``)."""

    def __init__(
        self,
        folder: Path,
        *,
        aof: bool = False,
        port: int | None = None,
        options: Sequence[str] = (),
    ) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.folder = folder
        self.aof = aof
        self.options = list(options)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        binary = _binary("redis-server")
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "redis.conf"
        if not config.exists():  # a restart keeps what a sentinel rewrote (replicaof)
            persistence = "appendonly yes\nappendfsync everysec" if self.aof else "appendonly no"
            log = self.folder / "redis.log"
            lines = [f"port {self.port}", "bind 127.0.0.1", 'save ""', f"dir {self.folder}",
                     f"logfile {log}", persistence, *self.options]  # fmt: skip
            config.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([binary, str(config)], stdout=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        answers = lambda: _answers_with(lambda: bool(client.ping()))  # noqa: E731
        wait_until(answers, 20, f"redis-server on port {self.port}")
        client.close()
        return self

    def restart(self) -> None:
        """SHUTDOWN (which writes the AOF), then start again on the same port and files."""
        assert self.proc is not None
        redis.Redis.from_url(self.url).shutdown()
        self.proc.wait(20)
        self.start()

    def kill(self) -> None:
        """SIGKILL: the host died (what the AOF had not written in the last second is lost)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM (Redis writes its AOF), then SIGKILL if it lingers (a slow disk)."""
        if self.proc is not None and self.proc.poll() is None:
            _end(self.proc)


class SentinelCluster:
    """A primary, ``replicas`` replicas and ``sentinels`` sentinels (quorum: a majority)
    on loopback ports (the sentinels' given, else free ones), with AOF on; ``env()``
    points trainq at it."""

    def __init__(
        self,
        folder: Path,
        *,
        replicas: int = 1,
        sentinels: int = 3,
        master_name: str = "trainq",
        sentinel_ports: Sequence[int] = (),
    ) -> None:
        self.folder = folder
        self.master_name = master_name
        primary = RedisServer(folder / "redis-0", aof=True)
        # A new replica syncs at once (the default waits 5 s for more replicas to join).
        primary.options.append("repl-diskless-sync-delay 0")
        follow = [f"replicaof 127.0.0.1 {primary.port}", "repl-diskless-sync-delay 0"]
        self.servers = [primary] + [
            RedisServer(folder / f"redis-{n}", aof=True, options=follow)
            for n in range(1, replicas + 1)
        ]
        self.sentinel_ports = list(sentinel_ports) or [free_port() for _ in range(sentinels)]
        self._sentinels: list[subprocess.Popen[bytes]] = []
        self._client = Sentinel([("127.0.0.1", p) for p in self.sentinel_ports],
                                socket_timeout=1.0)  # type: ignore[no-untyped-call]  # fmt: skip

    def start(self, timeout_s: float = 30) -> SentinelCluster:
        for server in self.servers:
            server.start()
        for replica in self.servers[1:]:
            self.wait_until_replica(replica, timeout_s)
        quorum = len(self.sentinel_ports) // 2 + 1
        for port in self.sentinel_ports:
            folder = self.folder / f"sentinel-{port}"
            folder.mkdir(parents=True, exist_ok=True)
            config = folder / "sentinel.conf"
            config.write_text("\n".join([
                f"port {port}", "bind 127.0.0.1", f"dir {folder}",
                f"logfile {folder / 'sentinel.log'}",
                f"sentinel monitor {self.master_name} 127.0.0.1 {self.servers[0].port} {quorum}",
                f"sentinel down-after-milliseconds {self.master_name} {DOWN_AFTER_MS}",
                f"sentinel failover-timeout {self.master_name} {FAILOVER_TIMEOUT_MS}",
                f"sentinel parallel-syncs {self.master_name} 1",
            ]) + "\n")  # fmt: skip
            self._sentinels.append(_sentinel_process(config))
        agree = lambda: _answers_with(self._sentinels_agree)  # noqa: E731
        if self.sentinel_ports:
            wait_until(agree, timeout_s, "the sentinels to see each other")
        return self

    def env(self) -> dict[str, str]:
        """trainq's settings for this cluster (database 0)."""
        listed = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return {
            "TRAINQ_REDIS_SENTINELS": listed,
            "TRAINQ_REDIS_MASTER_NAME": self.master_name,
            "TRAINQ_REDIS_URL": "redis://127.0.0.1/0",
        }

    def primary(self) -> RedisServer | None:
        """The server the sentinels name as primary now (None while none answers)."""
        try:
            _host, port = self._client.discover_master(self.master_name)  # type: ignore[no-untyped-call]
        except redis.RedisError:
            return None
        return next((s for s in self.servers if s.port == port), None)

    def wait_for_failover(
        self, old: RedisServer, timeout_s: float = 60, *, every_sentinel: bool = True
    ) -> RedisServer:
        """The replica the sentinels promoted in ``old``'s place, once it takes writes
        and every sentinel names it (or, without ``every_sentinel``, the first)."""

        def promoted() -> RedisServer | None:
            new = self.primary()
            if new is None or new is old or not _is_primary(new):
                return None
            return new if not every_sentinel or self._all_name(new) else None

        found = wait_until(promoted, timeout_s, f"a replica promoted in place of port {old.port}")
        assert found is not None
        return found

    def wait_until_replica(self, server: RedisServer, timeout_s: float = 60) -> None:
        """Until ``server`` (e.g. an old primary started again) is a synced replica."""

        def synced() -> bool:
            info = redis.Redis(port=server.port, socket_timeout=1).info("replication")
            if info.get("role") != "slave" or info.get("master_link_status") != "up":
                return False
            # Writes flow: after a diskless sync a primary streams to a replica only
            # from its first acknowledgement on (about a second), and WAIT waits for it.
            primary = redis.Redis(port=int(info["master_port"]), socket_timeout=1)
            primary.set("trainq-testing:probe", "1", ex=60)
            written = int(primary.info("replication")["master_repl_offset"])
            return bool(primary.wait(1, 100)) and _offset(server) >= written

        wait_until(lambda: _answers_with(synced), timeout_s, f"port {server.port} to replicate")

    def stop(self) -> None:
        for proc in self._sentinels:
            if proc.poll() is None:
                _end(proc)
        for server in self.servers:
            server.stop()

    def _all_name(self, primary: RedisServer) -> bool:
        """Whether every sentinel names ``primary`` (the others learn from the leader)."""
        for port in self.sentinel_ports:
            client = redis.Redis(port=port, socket_timeout=1, decode_responses=True)
            address = cast(tuple[str, int] | None,
                           client.sentinel_get_master_addr_by_name(self.master_name))  # fmt: skip
            if not address or int(address[1]) != primary.port:
                return False
        return True

    def _sentinels_agree(self) -> bool:
        for port in self.sentinel_ports:
            client = redis.Redis(port=port, decode_responses=True)
            state = cast(dict[str, Any], client.sentinel_master(self.master_name))
            others = int(state.get("num-other-sentinels", 0))
            if others < len(self.sentinel_ports) - 1 or int(state.get("num-slaves", 0)) < 1:
                return False
        return True


def _end(proc: subprocess.Popen[bytes], grace_s: float = 20) -> None:
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _sentinel_process(config: Path) -> subprocess.Popen[bytes]:
    """``redis-sentinel CONFIG`` (Debian's redis-sentinel; else redis-server --sentinel)."""
    if shutil.which("redis-sentinel"):
        argv = [_binary("redis-sentinel"), str(config)]
    else:
        argv = [_binary("redis-server"), str(config), "--sentinel"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL)


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed (apt-get install {name})")
    return found


def _offset(server: RedisServer) -> int:
    info = redis.Redis(port=server.port, socket_timeout=1).info("replication")
    return int(info.get("slave_repl_offset", -1))


def _is_primary(server: RedisServer) -> bool:
    return _answers_with(
        lambda: (
            redis.Redis(port=server.port, socket_timeout=1).info("replication")["role"] == "master"
        )
    )


def _answers_with(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except redis.RedisError:
        return False
