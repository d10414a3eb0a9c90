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


def connect(config: Config) -> redis.Redis:
    """REDIS_URL, or the embedded Redis (started if need be). Bytes responses: RQ needs them."""
    if config.redis_url is None:  # the embedded one is durable by construction
        return redis.Redis.from_url(embedded.ensure_running(config.home), health_check_interval=30, socket_timeout=30)
    client = redis.Redis.from_url(config.redis_url, health_check_interval=30, socket_timeout=30)
    try:
        check_durability(client, config.allow_unsafe_redis)
    except redis.ConnectionError:  # start anyway: /healthz says 503 until Redis answers
        logs.get("jitbot.runtime").warning("redis_unreachable_at_start", durability="not checked")
    return client


def build(config: Config, someone_waiting: bool = False) -> Runtime:
    """`someone_waiting`: the web process, where every Slack call is made while a person waits on the ack."""
    catalog = load_catalog(config.config_path)
    client = connect(config)
    store = Store(client)
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
