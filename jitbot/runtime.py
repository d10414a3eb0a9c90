"""Wiring: settings → catalog, store, queue, Slack client, use cases. One per process, built on first use."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import redis

from jitbot import embedded, logs, providers
from jitbot.catalog import Catalog, load_catalog
from jitbot.config import Config
from jitbot.drift import DriftScan
from jitbot.lifecycle import Lifecycle
from jitbot.outage import describe
from jitbot.redis_url import Connected, open_redis
from jitbot.service import Service
from jitbot.slack.notify import Notifier, web_client
from jitbot.store import Store, check_durability
from jitbot.tasks import Tasks


@dataclass(frozen=True)
class Runtime:
    config: Config
    catalog: Catalog
    redis: redis.Redis
    store: Store
    tasks: Tasks
    notifier: Notifier
    service: Service
    lifecycle: Lifecycle
    drift: DriftScan


def connect(config: Config) -> Connected:
    """REDIS_URL (jitbot.redis_url), or the embedded Redis (started if need be). Bytes responses: RQ needs them."""
    if config.redis_url is None:  # the embedded one is durable by construction
        return open_redis(embedded.ensure_running(config.home))
    connected = open_redis(config.redis_url, config.redis_tls_ca)
    try:
        check_durability(connected.client, config.allow_unsafe_redis)
    except redis.ConnectionError as error:  # start anyway: /healthz says 503 until Redis answers
        logs.get("jitbot.runtime").warning(
            "redis_unreachable_at_start", durability="not checked", error=describe(error)
        )
    return connected


def build(config: Config, someone_waiting: bool = False) -> Runtime:
    """`someone_waiting`: the web process, where every Slack call is made while a person waits on the ack."""
    catalog = load_catalog(config.config_path)
    connected = connect(config)
    client = connected.client
    store = Store(client, replicas=connected.replicas)
    tasks = Tasks(client)
    notifier = Notifier(
        web_client(config.slack_bot_token, config.slack_api_url, someone_waiting=someone_waiting), store
    )
    service = Service(catalog, store, tasks, notifier)
    lifecycle = Lifecycle(
        catalog, store, tasks, notifier, functools.cache(lambda kind: providers.build(kind, config, store))
    )
    drift = DriftScan(catalog, store, notifier, lifecycle.provider)
    return Runtime(config, catalog, client, store, tasks, notifier, service, lifecycle, drift)


@functools.cache
def current(someone_waiting: bool = False) -> Runtime:
    """This process's runtime, from the environment (the web app passes `someone_waiting`)."""
    logs.configure()
    return build(Config.from_env(), someone_waiting)
