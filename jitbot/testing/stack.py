"""A whole jitbot on one machine: a real Redis, the Slack stand-in, moto, and the Procfile's processes.

Used by the integration tests, by `jitbot demo` and by the benchmarks, so that all three run the same
real thing: the `web` and `worker` commands as separate processes, talking to loopback servers only.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

import boto3
import redis

from jitbot import embedded
from jitbot.catalog import parse_catalog
from jitbot.testing.slack_sender import SlackSender
from jitbot.testing.slack_standin import SlackStandIn

PROCESSES = {"web": "jitbot web", "worker": "jitbot worker"}  # the Procfile, which a test keeps equal to this
AWS_TEST_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
        }
    ],
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Stack:
    def __init__(self, home: Path, catalog: str, *, redis_url: str | None = None) -> None:
        self.home = home
        self.catalog_text = catalog
        self.redis_url = redis_url  # None: the processes share the embedded Redis under home/.jitbot
        self.secret = "stack-signing-secret"
        self.port = free_port()
        self.slack = SlackStandIn()
        self.moto_url = ""
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._moto: Any = None
        self._logs: dict[str, IO[bytes]] = {}

    def start(self) -> Stack:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "jitbot.yml").write_text(self.catalog_text)
        self.slack.start()
        self._start_moto()
        for name in PROCESSES:
            self.start_process(name)
        self.wait_healthy()
        return self

    def stop(self) -> None:
        for name in list(self.processes):
            self.stop_process(name)
        self.slack.stop()
        if self._moto is not None:
            self._moto.stop()
        if self.redis_url is None:
            embedded.stop(self.home / ".jitbot")

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SLACK_", "REDIS_", "JITBOT_"))}
        bin_dir = str(Path(sys.executable).parent)
        settings = {
            "PATH": bin_dir + os.pathsep + keep.get("PATH", ""),
            "SLACK_BOT_TOKEN": "xoxb-stack-test",
            "SLACK_SIGNING_SECRET": self.secret,
            "SLACK_API_URL": self.slack.url,
            "JITBOT_CONFIG": str(self.home / "jitbot.yml"),
            "PORT": str(self.port),
            "AWS_ENDPOINT_URL": self.moto_url,
            "PYTHONUNBUFFERED": "1",
            **AWS_TEST_ENV,
        }
        if self.redis_url:
            settings["REDIS_URL"] = self.redis_url
        return {**keep, **settings}

    def start_process(self, name: str) -> None:
        log = self._logs.get(name) or open(self.home / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop_process
        self._logs[name] = log
        self.processes[name] = subprocess.Popen(
            ["/bin/sh", "-c", "exec " + PROCESSES[name]],
            cwd=self.home,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop_process(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(name)
        if process.poll() is None:
            os.killpg(process.pid, sig)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self._logs.pop(name).close()

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.logs(name)[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"web did not become healthy:\n{self.logs('web')[-3000:]}")

    @property
    def sender(self) -> SlackSender:
        return SlackSender(f"http://127.0.0.1:{self.port}/slack/events", self.secret)

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url or embedded.url_for(self.home / ".jitbot"))

    def aws(self, service: str, **credentials: str) -> Any:
        keys = credentials or {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        return boto3.client(service, endpoint_url=self.moto_url, region_name="us-east-1", **keys)  # type: ignore[call-overload]

    def logs(self, name: str | None = None) -> str:
        names = [name] if name else list(PROCESSES)
        return "".join(
            (self.home / f"{n}.log").read_text(errors="replace") for n in names if (self.home / f"{n}.log").exists()
        )

    def _start_moto(self) -> None:
        from moto.server import ThreadedMotoServer

        port = free_port()
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._moto.start()
        self.moto_url = f"http://127.0.0.1:{port}"
        # moto's backends are per process, not per server: start from an empty account every time
        urllib.request.urlopen(urllib.request.Request(f"{self.moto_url}/moto-api/reset", method="POST"), timeout=10)
        iam = self.aws("iam")
        for resource in parse_catalog(self.catalog_text).resources.values():
            if resource.provider == "aws":
                name = resource.settings["role_arn"].rsplit("/", 1)[-1]
                iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST))
