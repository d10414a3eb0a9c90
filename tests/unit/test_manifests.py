"""The two Slack app manifests: manifest.yml (HTTP: Slack posts to the web process) and manifest.socket.yml (Socket
Mode: no request URL at all), the same app otherwise."""

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
URL_KEYS = {"url", "request_url"}


def load(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / name).read_text())
    assert isinstance(loaded, dict)
    return loaded


def urls(node: Any) -> list[str]:
    """Every url / request_url value, however deep."""
    if isinstance(node, dict):
        return [v for k, v in node.items() if k in URL_KEYS] + [u for v in node.values() for u in urls(v)]
    return [u for item in node for u in urls(item)] if isinstance(node, list) else []


def without_urls(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: without_urls(v) for k, v in node.items() if k not in URL_KEYS}
    return [without_urls(item) for item in node] if isinstance(node, list) else node


def test_http_manifest_when_parsed_then_three_request_urls_and_no_socket_mode() -> None:
    http = load("manifest.yml")
    assert urls(http) == ["https://jitbot.example.com/slack/events"] * 3
    assert http["settings"]["socket_mode_enabled"] is False


def test_socket_manifest_when_parsed_then_socket_mode_and_no_url_anywhere() -> None:
    socket = load("manifest.socket.yml")
    assert urls(socket) == []
    assert socket["settings"]["socket_mode_enabled"] is True


def test_socket_manifest_when_compared_with_http_one_then_the_same_app_but_for_urls_and_mode() -> None:
    http, socket = without_urls(load("manifest.yml")), load("manifest.socket.yml")
    http["settings"]["socket_mode_enabled"] = True
    assert socket == http
