"""Settings from the environment — the only module that reads it (12-factor)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from jitbot.errors import ConfigError

DEFAULT_SLACK_API_URL = "https://slack.com/api/"


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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env
        port, give_up = env.get("PORT", "3000"), env.get("JITBOT_REDIS_GIVE_UP_S") or None
        if not port.isdigit():
            raise ConfigError(f"PORT must be a number, not '{port}'")
        if give_up is not None and not give_up.isdigit():
            raise ConfigError(f"JITBOT_REDIS_GIVE_UP_S must be a whole number of seconds, not '{give_up}'")
        api_url = env.get("SLACK_API_URL") or DEFAULT_SLACK_API_URL
        return cls(
            slack_bot_token=env.get("SLACK_BOT_TOKEN") or None,
            slack_signing_secret=env.get("SLACK_SIGNING_SECRET") or None,
            slack_app_token=env.get("SLACK_APP_TOKEN") or None,
            slack_api_url=api_url if api_url.endswith("/") else api_url + "/",  # slack_sdk joins, needs the slash
            redis_url=env.get("REDIS_URL") or None,
            redis_tls_ca=env.get("REDIS_TLS_CA") or None,
            config_path=env.get("JITBOT_CONFIG") or "jitbot.yml",
            port=int(port),
            home=Path.cwd() / ".jitbot",
            allow_unsafe_redis=env.get("JITBOT_ALLOW_UNSAFE_REDIS") == "1",
            azure_arm_endpoint=env.get("AZURE_ARM_ENDPOINT") or None,
            gcp_resourcemanager_endpoint=env.get("GCP_RESOURCEMANAGER_ENDPOINT") or None,
            redis_give_up_s=float(give_up) if give_up else None,
        )

    def require(self, name: str) -> str:
        """The value of a required setting, or a ConfigError naming the variable to set."""
        value = getattr(self, name.lower())
        if not value:
            raise ConfigError(f"{name.upper()} is not set: jitbot needs it to talk to Slack (see README, 'Run it').")
        return str(value)
