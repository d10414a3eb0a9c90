"""Wiring: settings → catalog, store, queue, Slack client, use cases. One per process, built on first use."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import redis

from jitbot import providers
from jitbot.app.drift import DriftScan
from jitbot.app.guard import Guard
from jitbot.app.lifecycle import Lifecycle
from jitbot.app.people import People
from jitbot.config import Config
from jitbot.core.catalog import Catalog, load_catalog
from jitbot.jobs.tasks import Tasks
from jitbot.observability import logs
from jitbot.observability.outage import describe
from jitbot.slack.messenger import SlackMessenger, slack_messenger
from jitbot.slack.notify import Notifier, web_client
from jitbot.slack.pacing import Pacer
from jitbot.slack.surface import Surface, build_surface
from jitbot.store import Store, embedded
from jitbot.store.durability import check_durability
from jitbot.store.pacing import SlackPace
from jitbot.store.redis_url import Connected, Replicas, open_redis


@dataclass(frozen=True)
class Runtime:
    config: Config
    catalog: Catalog
    redis: redis.Redis
    store: Store
    tasks: Tasks
    notifier: Notifier
    messenger: SlackMessenger
    surface: Surface
    lifecycle: Lifecycle
    drift: DriftScan


def connect(config: Config, start_store: bool = True) -> Connected:
    """REDIS_URL (jitbot.redis_url), or the embedded Redis: started if need be by a process that serves
    (`start_store`), only found by a one-off command (embedded.open_existing). Bytes responses: RQ needs them."""
    if config.redis_url is None:  # the embedded one is durable by construction
        home = config.home
        return open_redis(embedded.ensure_running(home) if start_store else embedded.open_existing(home))
    connected = open_redis(config.redis_url, config.redis_tls_ca)
    try:
        check_durability(connected.client, config.allow_unsafe_redis)
    except redis.ConnectionError as error:  # start anyway: /healthz says 503 until Redis answers
        logs.get("jitbot.runtime").warning(
            "redis_unreachable_at_start", durability="not checked", error=describe(error)
        )
    return connected


def build(config: Config, someone_waiting: bool = False, start_store: bool = True) -> Runtime:
    """`someone_waiting`: the web process, where every Slack call is made while a person waits on the ack.
    `start_store`: a process that serves, which may start the embedded Redis (a one-off command may not)."""
    if start_store:
        catalog = load_catalog(config.config_path)  # a bad catalog starts no Redis
        connected = connect(config)
    else:  # a one-off command run where there is no store is told that first
        connected = connect(config, start_store=False)
        catalog = load_catalog(config.config_path)
    client = connected.client
    replicas = Replicas(client, connected.replicas)
    store = Store(client, replicas)
    tasks = Tasks(client, replicas)
    client_of_slack = web_client(config.slack_bot_token, config.slack_api_url, someone_waiting=someone_waiting)
    paced = config.slack_pacing and not someone_waiting  # a person waits on the web's calls: they never wait their turn
    # digests (requests folded into one approval message) are part of keeping Slack's pace: off with pacing
    notifier = Notifier(client_of_slack, store, Pacer(SlackPace(client)) if paced else None)
    people = People(catalog, notifier, store)  # Slack is the directory
    messenger = slack_messenger(catalog, notifier, people, digests=paced)
    surface = build_surface(Guard(catalog, store, people), tasks, notifier, messenger)
    clouds = functools.cache(lambda kind: providers.build(kind, config, store.locks))  # writers share the store's locks
    lifecycle = Lifecycle(catalog, store, tasks, messenger, people, clouds)
    drift = DriftScan(catalog, store, messenger, lifecycle.provider)
    return Runtime(config, catalog, client, store, tasks, notifier, messenger, surface, lifecycle, drift)


@functools.cache
def current(someone_waiting: bool = False, start_store: bool = True) -> Runtime:
    """This process's runtime, from the environment (the web app passes `someone_waiting`, the one-off commands
    `start_store=False`)."""
    config = Config.from_env()
    logs.configure(level=config.log_level)
    return build(config, someone_waiting, start_store)
