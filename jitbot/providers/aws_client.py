"""AWS calls as jitbot makes them, for STS and Identity Center alike: a client with jitbot's timeouts and no
retries of its own, each call's SDK errors turned into a ProviderError, and writers of one object taking turns."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from jitbot.core.errors import ProviderError
from jitbot.providers.aws_sso_assignment import Ledger
from jitbot.providers.base import CONNECT_S, READ_S

Serial = Callable[[str], AbstractContextManager[None]]  # a role name → its writers take turns inside


class SharedWrites(Ledger, Protocol):
    """What the workers keep in common about the AWS objects their grants share (jitbot.store.locks.Locks is one):
    writers of one take turns across processes, and the ledger says which grants hold an Identity Center assignment."""

    def serial(self, name: str, ttl: timedelta, wait: timedelta) -> AbstractContextManager[None]:
        """Wait up to `wait` for `name`'s writer before this one, then hold it for at most `ttl`."""
        ...


RETRYABLE_CODES = {
    "ServiceUnavailable",
    "InternalFailure",
    "InternalError",
    "IDPCommunicationError",
    "ConcurrentModification",
    # Identity Center: a previous write not yet propagated (AWS advises retrying with backoff), and its 5xx
    "ConflictException",
    "InternalServerException",
}
# Retryable too, and not a fault: AWS asks for fewer calls (botocore's standard retry mode counts these among its
# throttling codes: botocore/retries/standard.py, ThrottledRetryableChecker).
THROTTLING_CODES = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}

# one attempt each, bounded in time: a throttled or frozen call is jitbot's to retry, with its own backoff and alert.
# The mode is pinned: under AWS_RETRY_MODE=adaptive (or retry_mode in ~/.aws/config) botocore's client-side rate
# limiter would sleep in the worker before each send on a client that has seen a Throttling, one attempt or not.
CLIENT_CONFIG = Config(
    connect_timeout=CONNECT_S, read_timeout=READ_S, retries={"mode": "standard", "total_max_attempts": 1}
)


def client(service: str, region: str | None = None) -> Any:
    """A boto3 client of `service` with jitbot's timeouts and no retries of its own."""
    make: Any = boto3.client  # its stubs type a client per literal service name
    return make(service, region_name=region, config=CLIENT_CONFIG)


def in_process() -> Serial:
    """Writers of one name take turns within this process only (the workers pass a Redis lock instead)."""
    locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

    @contextmanager
    def serial(role: str) -> Iterator[None]:
        with locks[role]:
            yield

    return serial


def call(operation: str, method: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one AWS call; turn SDK errors into ProviderError with a message a person can act on."""
    try:
        return method(*args, **kwargs)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "Unknown")
        message = error.response.get("Error", {}).get("Message", "")
        failed = ProviderError(
            f"AWS {operation} failed: {code}: {message}",
            retryable=code in RETRYABLE_CODES | THROTTLING_CODES,
            throttled=code in THROTTLING_CODES,
        )
        failed.code = code
        raise failed from None
    except (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError) as error:
        raise ProviderError(
            f"AWS {operation} could not be reached: {type(error).__name__}", retryable=True, unanswered=True
        ) from None
    except BotoCoreError as error:
        raise ProviderError(f"AWS {operation} failed in the SDK: {type(error).__name__}", retryable=True) from None
