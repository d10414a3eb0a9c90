"""Settings from the environment — the only module that reads it (12-factor)."""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from jitbot.core.errors import ConfigError

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
LOG_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR}


@dataclass(frozen=True)
class Config:
    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    redis_url: str | None = None  # None: the embedded Redis under `home`
    config_path: str = "jitbot.yml"
    port: int = 3000
    home: Path = Path(".jitbot")
    redis_tls_ca: str | None = None  # REDIS_TLS_CA: the CA file a rediss:// server's certificate is checked against
    allow_unsafe_redis: bool = False  # JITBOT_ALLOW_UNSAFE_REDIS=1: skip the durability check of REDIS_URL
    azure_arm_endpoint: str | None = None  # None: Azure's public Resource Manager
    gcp_resourcemanager_endpoint: str | None = None  # None: Google's public Resource Manager
    redis_give_up_s: float | None = None  # JITBOT_REDIS_GIVE_UP_S: exit after Redis is away this long (None: never)
    log_level: int = logging.INFO  # LOG_LEVEL: jitbot's lines and those of the libraries beneath it, gunicorn's too
    host: str = "0.0.0.0"  # JITBOT_BIND or HOST: where web (and Socket Mode's health server) listens, on `port`
    web_concurrency: int = 2  # WEB_CONCURRENCY: gunicorn's worker processes (gunicorn's own convention)
    gunicorn_args: tuple[str, ...] = ()  # GUNICORN_CMD_ARGS, split as a shell would: gunicorn settings over jitbot's
    # JITBOT_SLACK_PACING=0: workers call Slack at once, leaving 429s to the client's retries, and announce each
    # request in a message of its own (no digests)
    slack_pacing: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env
        port, give_up = env.get("PORT", "3000"), env.get("JITBOT_REDIS_GIVE_UP_S") or None
        if not port.isdigit():
            raise ConfigError(f"PORT must be a number, not '{port}'")
        if give_up is not None and not give_up.isdigit():
            raise ConfigError(f"JITBOT_REDIS_GIVE_UP_S must be a whole number of seconds, not '{give_up}'")
        api_url = env.get("SLACK_API_URL") or DEFAULT_SLACK_API_URL
        host, bound_port = _bind(env, int(port))
        return cls(
            slack_bot_token=env.get("SLACK_BOT_TOKEN") or None,
            slack_signing_secret=env.get("SLACK_SIGNING_SECRET") or None,
            slack_app_token=env.get("SLACK_APP_TOKEN") or None,
            slack_api_url=api_url if api_url.endswith("/") else api_url + "/",  # slack_sdk joins, needs the slash
            redis_url=env.get("REDIS_URL") or None,
            redis_tls_ca=env.get("REDIS_TLS_CA") or None,
            config_path=env.get("JITBOT_CONFIG") or "jitbot.yml",
            port=bound_port,
            home=Path.cwd() / ".jitbot",
            allow_unsafe_redis=env.get("JITBOT_ALLOW_UNSAFE_REDIS") == "1",
            azure_arm_endpoint=env.get("AZURE_ARM_ENDPOINT") or None,
            gcp_resourcemanager_endpoint=env.get("GCP_RESOURCEMANAGER_ENDPOINT") or None,
            redis_give_up_s=float(give_up) if give_up else None,
            log_level=_log_level(env),
            host=host,
            web_concurrency=_web_concurrency(env),
            gunicorn_args=_gunicorn_args(env),
            slack_pacing=env.get("JITBOT_SLACK_PACING") != "0",
        )

    @property
    def bind(self) -> str:
        """The listening address as gunicorn takes it: `host:port`, an IPv6 address in brackets."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def require(self, name: str) -> str:
        """The value of a required setting, or a ConfigError naming the variable to set."""
        value = getattr(self, name.lower())
        if not value:
            raise ConfigError(f"{name.upper()} is not set: jitbot needs it to talk to Slack (see README, 'Run it').")
        return str(value)


def _log_level(env: Mapping[str, str]) -> int:
    given = env.get("LOG_LEVEL") or "INFO"
    if given.upper() not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not '{given}'")
    return LOG_LEVELS[given.upper()]


def _web_concurrency(env: Mapping[str, str]) -> int:
    given = env.get("WEB_CONCURRENCY") or "2"
    if not given.isdigit() or int(given) < 1:
        raise ConfigError(f"WEB_CONCURRENCY must be a number of worker processes (1 or more), not '{given}'")
    return int(given)


def _gunicorn_args(env: Mapping[str, str]) -> tuple[str, ...]:
    try:
        return tuple(shlex.split(env.get("GUNICORN_CMD_ARGS") or ""))
    except ValueError as error:  # an unclosed quote
        raise ConfigError(f"GUNICORN_CMD_ARGS cannot be split as a shell would: {error}") from None


def _bind(env: Mapping[str, str], port: int) -> tuple[str, int]:
    """JITBOT_BIND, else HOST: `host`, `host:port` or `[IPv6]:port`; a host given alone takes PORT."""
    name = "JITBOT_BIND" if env.get("JITBOT_BIND") else "HOST"
    given = env.get(name) or "0.0.0.0"
    if given.startswith("["):
        host, _, rest = given[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif given.count(":") == 1:
        host, _, port_text = given.partition(":")
    else:  # a name, an IPv4 address, or a bare IPv6 address (which has no room for a port)
        host, port_text = given, ""
    if not host or (port_text and not port_text.isdigit()):
        raise ConfigError(f"{name} must be a host or host:port (0.0.0.0, 0.0.0.0:3000, [::]:3000), not '{given}'")
    return host, int(port_text) if port_text else port
