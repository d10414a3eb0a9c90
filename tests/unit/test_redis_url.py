"""REDIS_URL as an operator writes it: plain, TLS, and through Sentinel; malformed ones named, never a traceback."""

from __future__ import annotations

import ssl

import pytest
from redis.connection import SSLConnection
from redis.sentinel import SentinelConnectionPool

from jitbot.core.errors import ConfigError
from jitbot.store.redis_url import open_redis, parse_sentinel


def test_parse_sentinel_when_full_then_every_part() -> None:
    found = parse_sentinel("redis+sentinel://:s%40cret@10.0.0.1:26380,[::1]:26381,sentinel-c/jitbot-master/2")
    assert found.sentinels == [("10.0.0.1", 26380), ("::1", 26381), ("sentinel-c", 26379)]
    assert (found.master, found.db, found.username, found.password) == ("jitbot-master", 2, None, "s@cret")
    assert found.sentinel_password is None


def test_parse_sentinel_when_user_and_sentinel_password_then_both() -> None:
    found = parse_sentinel("redis+sentinel://app:pw@h:1/m?sentinel_password=other")
    assert (found.username, found.password, found.sentinel_password, found.db) == ("app", "pw", "other", 0)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://h:26379", "no master name"),
        ("redis+sentinel:///m", "no sentinel"),
        ("redis+sentinel://h:26379/m/zero", "must be a number, not 'zero'"),
        ("redis+sentinel://h:26379/m/0/extra", "has more"),
        ("redis+sentinel://h:notaport/m", "'h:notaport' is not a sentinel's host:port"),
        ("redis+sentinel://h:70000/m", "'h:70000' is not a sentinel's host:port"),
    ],
)
def test_parse_sentinel_when_malformed_then_config_error_naming_the_part(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match="REDIS_URL") as raised:
        parse_sentinel(url)
    assert says in str(raised.value)


def test_parse_sentinel_when_malformed_with_a_password_then_the_message_hides_it() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_sentinel("redis+sentinel://:hunter2@h:26379")
    assert "hunter2" not in str(raised.value) and "***@h:26379" in str(raised.value)


@pytest.mark.parametrize("url", ["http://h:6379", "h:6379", "redis+cluster://h:6379"])
def test_open_redis_when_scheme_unknown_then_config_error_listing_the_schemes(url: str) -> None:
    with pytest.raises(ConfigError, match=r"redis://, rediss://, unix://, redis\+sentinel://"):
        open_redis(url)


def test_open_redis_when_sentinel_then_master_pool_and_one_replica_to_wait_for() -> None:
    connected = open_redis("redis+sentinel://:pw@127.0.0.1:1,127.0.0.1:2/jitbot/3")  # no connection is made yet
    pool = connected.client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "jitbot" and pool.is_master
    assert pool.connection_kwargs["db"] == 3 and pool.connection_kwargs["password"] == "pw"
    assert connected.replicas == 1


def test_open_redis_when_tls_with_a_ca_file_then_verified_against_it() -> None:
    connected = open_redis("rediss://cache.internal:6380/0", tls_ca="/etc/jitbot/redis-ca.pem")
    connection = connected.client.connection_pool.make_connection()  # made, not connected
    assert isinstance(connection, SSLConnection) and connection.cert_reqs == ssl.CERT_REQUIRED
    assert connection.ca_certs == "/etc/jitbot/redis-ca.pem" and connected.replicas == 0


def test_open_redis_when_plain_then_the_ca_is_not_applied() -> None:
    kwargs = open_redis("redis://cache.internal:6379/0", tls_ca="/ca.pem").client.connection_pool.connection_kwargs
    assert "ssl_ca_certs" not in kwargs and kwargs["socket_timeout"] == 30
