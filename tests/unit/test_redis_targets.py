"""Which Redis every process talks to: one URL, or the primary the sentinels name."""

from __future__ import annotations

import pytest
import redis
from pydantic import ValidationError
from redis.sentinel import SentinelConnectionPool

from trainq import connections
from trainq.celery_app import celery_config
from trainq.config import Settings
from trainq.connections import INTERACTIVE, Target, redis_client

HA = Settings(
    redis_url="redis://ignored-host:6379/2",
    redis_sentinels="s1:26379, s2:26380,[::1]:26381",
    redis_master_name="prod",
    redis_password="p@ss/word",
    redis_sentinel_password="sentinel-pw",
)


def test_sentinels_are_parsed_and_a_bad_entry_is_named() -> None:
    assert HA.sentinel_addresses == (("s1", 26379), ("s2", 26380), ("::1", 26381))
    for bad in ("s1", "s1:port", "s1:0", ":26379"):
        with pytest.raises(ValidationError, match=f"TRAINQ_REDIS_SENTINELS: '{bad}' is not"):
            Settings(redis_sentinels=f"ok:1,{bad}")


def test_celery_reaches_the_primary_through_every_sentinel() -> None:
    config = celery_config(HA)

    expected = ";".join(
        f"sentinel://:p%40ss%2Fword@{host}:{port}/2"
        for host, port in (("s1", 26379), ("s2", 26380), ("::1", 26381))
    )
    assert config["broker_url"] == config["result_backend"] == expected
    for options in (config["broker_transport_options"], config["result_backend_transport_options"]):
        assert options["master_name"] == "prod"
        assert options["sentinel_kwargs"]["password"] == "sentinel-pw"
        assert options["global_keyprefix"] == HA.key_prefix


def test_without_sentinels_the_url_is_used_with_the_password() -> None:
    plain = Settings(redis_url="redis://box:6380/1")
    assert celery_config(plain)["broker_url"] == "redis://box:6380/1"
    with_password = plain.model_copy(update={"redis_password": HA.redis_password})
    assert celery_config(with_password)["broker_url"] == "redis://:p%40ss%2Fword@box:6380/1"
    assert "master_name" not in celery_config(plain)["broker_transport_options"]


def test_trainqs_own_clients_ask_the_sentinels_for_the_primary() -> None:
    client = redis_client(Target.of(HA), INTERACTIVE)

    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "prod"
    assert pool.connection_kwargs["db"] == 2
    assert pool.connection_kwargs["password"] == "p@ss/word"
    sentinel = pool.sentinel_manager.sentinels[0]
    assert sentinel.connection_pool.connection_kwargs["password"] == "sentinel-pw"
    assert client is redis_client(Target.of(HA), INTERACTIVE)  # one pool per process


def test_no_primary_is_said_to_be_a_failover_naming_the_sentinels() -> None:
    exc = redis.sentinel.MasterNotFoundError("No master found for 'prod'")

    message = str(connections.unavailable(exc, HA))

    assert "no primary answers for the primary of 'prod'" in message
    assert "s1:26379,s2:26380,::1:26381" in message
    assert "p@ss" not in message and "sentinel-pw" not in message
    assert "failover" in message
