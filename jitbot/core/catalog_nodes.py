"""The catalog's YAML read node by node: each node knows its line and key path, so every check names both.

The catalog and each provider's settings parser (jitbot/providers/*_settings.py) read their values through these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import yaml

from jitbot.core.durations import parse_duration
from jitbot.core.errors import ConfigError, JitError

TOP_LEVEL = "(top level)"  # the path errors name for the document itself


class CatalogLoader(yaml.SafeLoader):
    """PyYAML's safe loader without implicit timestamps: a scalar that looks like a date is read as written.

    No catalog key takes a date, and the values that can look like one mean their text: an IAM policy's
    `Version: 2012-10-17` (serialised to JSON, which has no date type: a date crashed `check` and `web`),
    a description, a reason example. So a date is read as written everywhere rather than refused outside
    `session_policy`: an error would only make operators quote what YAML 1.2's core schema (§10.3, no
    timestamp type) reads as a string anyway.
    """


CatalogLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class Node:
    """A YAML node with the key path it sits at, so that errors can name the line and the key."""

    raw: yaml.Node | None
    path: str
    source: str

    @property
    def line(self) -> int:
        return self.raw.start_mark.line + 1 if self.raw is not None else 1

    @property
    def value(self) -> Any:
        return CatalogLoader("").construct_document(self.raw) if self.raw is not None else None

    def fail(self, message: str) -> ConfigError:
        return ConfigError(f"{self.source} line {self.line}: {self.path}: {message}")


def compose(text: str, source: str) -> Node:
    """The document's root node; not YAML, or a key given twice anywhere, is a ConfigError."""
    try:
        root = yaml.compose(text, Loader=CatalogLoader)
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML: {error}") from None
    _refuse_duplicate_keys(root, TOP_LEVEL, source, set())
    return Node(root, TOP_LEVEL, source)


def _refuse_duplicate_keys(node: yaml.Node | None, path: str, source: str, seen: set[int]) -> None:
    """A key given twice at any depth is an error naming both lines: YAML would keep the later one silently,
    dropping, say, the earlier resource's approvers and session policy. `seen` walks an aliased node once."""
    if node is None or id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _refuse_duplicate_keys(item, f"{path}[{index}]", source, seen)
    elif isinstance(node, yaml.MappingNode):
        first: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key, here = str(key_node.value), child_path(path, str(key_node.value))
            if key in first:
                line = first[key].start_mark.line + 1
                raise Node(key_node, here, source).fail(f"given twice (first at line {line}); give it once")
            first[key] = key_node
            _refuse_duplicate_keys(value_node, here, source, seen)


def mapping(node: Node | None, allowed: set[str] | None) -> dict[str, Node]:
    """Children of a mapping node; unknown keys (when `allowed` is given) are errors."""
    assert node is not None
    if not isinstance(node.raw, yaml.MappingNode):
        raise node.fail("must be a mapping of keys to values")
    children: dict[str, Node] = {}
    for key_node, value_node in node.raw.value:
        key = str(key_node.value)
        path = child_path(node.path, key)
        if allowed is not None and key not in allowed:
            raise Node(key_node, path, node.source).fail(f"unknown key (known here: {', '.join(sorted(allowed))})")
        children[key] = Node(value_node, path, node.source)
    return children


def child_path(parent: str, key: str) -> str:
    return key if parent == TOP_LEVEL else f"{parent}.{key}"


def required(keys: dict[str, Node], key: str, source: str) -> Node:
    if key not in keys:
        raise Node(None, key, source).fail("missing (required)")
    return keys[key]


def duration(node: Node | None, default: str) -> timedelta:
    try:
        return parse_duration(str(node.value) if node else default)
    except JitError as error:
        assert node is not None
        raise node.fail(str(error)) from None


def positive_int(node: Node) -> int:
    if isinstance(node.value, bool) or not isinstance(node.value, int) or node.value < 1:
        raise node.fail("must be a whole number of at least 1")
    return node.value


def boolean(node: Node) -> bool:
    if not isinstance(node.value, bool):
        raise node.fail("must be true or false")
    return node.value


def id_list(node: Node, pattern: re.Pattern[str], what: str) -> list[str]:
    values = node.value if isinstance(node.value, list) else None
    if values is None:
        raise node.fail(f"must be a list, each {what}")
    for value in values:
        if not pattern.fullmatch(str(value)):
            raise node.fail(f"'{value}' is not {what}")
    return [str(v) for v in values]


def patterned(keys: dict[str, Node], rules: dict[str, tuple[re.Pattern[str], str]]) -> dict[str, str]:
    """Required settings, each checked against its pattern; the error shows an example of the right form."""
    settings: dict[str, str] = {}
    for key, (pattern, example) in rules.items():
        node = keys.get(key)
        if node is None:
            raise next(iter(keys.values())).fail(f"{key} is required here, e.g. {example}")
        if not pattern.fullmatch(str(node.value)):
            raise node.fail(f"'{node.value}' is not of the form {example}")
        settings[key] = str(node.value)
    return settings


def optional_text(keys: dict[str, Node], key: str) -> str | None:
    """A free-form setting as written, or None when the resource leaves it out."""
    return str(keys[key].value) if key in keys else None
