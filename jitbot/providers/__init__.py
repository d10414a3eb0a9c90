"""Clouds behind one interface: `grant`, `extend` and `revoke`, all safe to repeat. SDKs are imported only
when used, so the web process never loads them.

The package imports nothing of jitbot's when it runs: the pure catalog imports each provider's settings module
(`*_settings.py`) from here, and the provider contract imports the catalog."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jitbot.config import Config
    from jitbot.providers.aws_client import Serial, SharedWrites
    from jitbot.providers.base import Provider

SHARED_WRITE_HOLD = timedelta(seconds=30)  # a write to something shared (a role's inline policy) holds it this long
SHARED_WRITE_WAIT = timedelta(seconds=20)  # and waits this long for the writer before it


def build(kind: str, config: Config, shared: SharedWrites | None = None) -> Provider:
    """The provider for a catalog resource's kind (`Resource.kind`: aws, aws-sso, azure, gcp, fake). With
    `shared` (the store's locks), writers of one shared cloud object take turns across every process."""
    if kind == "aws":
        from jitbot.providers.aws import AwsProvider

        return AwsProvider(serial=_serial(shared, "aws-role") if shared else None)
    if kind == "aws-sso":
        from jitbot.providers.aws_sso import AwsSsoProvider

        if shared is None:
            return AwsSsoProvider()
        return AwsSsoProvider(ledger=shared, serial=_serial(shared, "aws-sso"))
    if kind == "azure":
        from jitbot.providers.azure import AzureProvider

        return AzureProvider(endpoint=config.azure_arm_endpoint)
    if kind == "gcp":
        from jitbot.providers.gcp import GcpProvider

        return GcpProvider(endpoint=config.gcp_resourcemanager_endpoint)
    if kind == "fake":
        from jitbot.providers.fake import FakeProvider

        return FakeProvider()
    raise ValueError(f"unknown provider {kind}")  # the catalog refuses unknown providers before this


def _serial(shared: SharedWrites, kind: str) -> Serial:
    return lambda name: shared.serial(f"{kind}:{name}", SHARED_WRITE_HOLD, SHARED_WRITE_WAIT)
