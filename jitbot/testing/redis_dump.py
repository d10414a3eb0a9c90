"""Everything a Redis holds, per key and as bytes — for tests that prove no secret was ever stored."""

from __future__ import annotations

import zlib
from typing import Any

import redis


def dump_redis(client: redis.Redis) -> dict[str, bytes]:
    """Every key of every type, with RQ's compressed job payloads (`data` fields) opened."""
    return {key.decode(): _value_bytes(client, key) for key in client.scan_iter(count=1000)}


def _value_bytes(client: Any, key: bytes) -> bytes:  # redis-py types say bytes | str; this client is bytes
    kind = client.type(key)
    parts: list[bytes] = []
    if kind == b"none":  # gone between the scan and the read (RQ's short-lived keys)
        return b""
    if kind == b"string":
        parts.append(client.get(key) or b"")
    elif kind == b"hash":
        for field, value in client.hgetall(key).items():
            parts += [field, value]
            if field == b"data":
                parts.append(zlib.decompress(value))
    elif kind == b"list":
        parts += client.lrange(key, 0, -1)
    elif kind == b"set":
        parts += client.smembers(key)
    elif kind == b"zset":
        parts += client.zrange(key, 0, -1)
    elif kind == b"stream":
        parts += [part for _, fields in client.xrange(key) for item in fields.items() for part in item]
    else:
        raise AssertionError(f"unexpected Redis type {kind!r} at {key!r}")
    return b"\n".join(parts)
