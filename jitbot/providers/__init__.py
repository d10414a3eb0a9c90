"""Clouds behind one interface: `grant` and `revoke`, both safe to repeat. SDKs are imported only when used."""

from __future__ import annotations

from jitbot.providers.base import Provider


def build(name: str) -> Provider:
    """The provider named in the catalog."""
    if name == "aws":
        from jitbot.providers.aws import AwsProvider

        return AwsProvider()
    if name == "fake":
        from jitbot.providers.fake import FakeProvider

        return FakeProvider()
    raise ValueError(f"unknown provider {name}")  # the catalog refuses unknown providers before this
