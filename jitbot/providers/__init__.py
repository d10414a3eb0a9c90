"""Clouds behind one interface: `grant`, `extend` and `revoke`, all safe to repeat. SDKs are imported only
when used, so the web process never loads them."""

from __future__ import annotations

from jitbot.config import Config
from jitbot.providers.base import Provider


def build(kind: str, config: Config) -> Provider:
    """The provider for a catalog resource's kind (`Resource.kind`: aws, aws-sso, azure, gcp, fake)."""
    if kind == "aws":
        from jitbot.providers.aws import AwsProvider

        return AwsProvider()
    if kind == "aws-sso":
        from jitbot.providers.aws_sso import AwsSsoProvider

        return AwsSsoProvider()
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
