"""The fake provider's settings: knobs for trying faults out, none required."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from jitbot.core.catalog_nodes import Node, duration, optional_text
from jitbot.providers.settings import ProviderSettings


@dataclass(frozen=True)
class FakeSettings(ProviderSettings):
    """A delay per call, a file whose presence fails calls, and the policy its grants share (revoked together, as
    a GCP project's)."""

    KIND: ClassVar[str] = "fake"
    KEYS: ClassVar[frozenset[str]] = frozenset({"delay", "fail_when_exists", "policy"})

    delay: float = 0.0  # seconds per call
    fail_when_exists: str | None = None  # a path: while it exists, every call fails as in a cloud outage
    policy: str | None = None  # the shared policy its revocations write, as a GCP project's: revoked together

    @classmethod
    def parse(cls, keys: dict[str, Node]) -> Self:
        delay = _delay(keys["delay"]) if "delay" in keys else 0.0
        return cls(delay, optional_text(keys, "fail_when_exists"), optional_text(keys, "policy"))


def _delay(node: Node) -> float:
    """Seconds, fractions allowed (a cloud call takes tens of milliseconds), or a duration."""
    plain = isinstance(node.value, int | float) and not isinstance(node.value, bool)
    return float(node.value) if plain else duration(node, "0s").total_seconds()
