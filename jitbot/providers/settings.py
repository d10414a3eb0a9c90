"""What the catalog asks of a provider's settings: each provider's own (`*_settings.py`) says these of itself.

Pure, as the catalog is: the provider modules import their cloud's SDK, so their settings live beside them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar, Self

from jitbot.core.catalog_nodes import Node


@dataclass(frozen=True)
class ProviderSettings(ABC):
    """A resource's provider-specific settings, typed and validated when the catalog is read."""

    KIND: ClassVar[str]  # the implementation that serves the resource (`Resource.kind`)
    KEYS: ClassVar[frozenset[str]]  # the catalog keys it reads, beside the policy keys every resource has
    MAX_DURATION: ClassVar[timedelta | None] = None  # the longest grant the cloud issues, when it caps them
    # what it must know of the person: checked when they ask, not after approval
    IDENTITY: ClassVar[tuple[str, ...]] = ()

    @classmethod
    @abstractmethod
    def parse(cls, keys: dict[str, Node]) -> Self:
        """The settings from a resource's keys; a ConfigError naming the line and the key when one is wrong."""
