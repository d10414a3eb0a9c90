"""A whole jitbot on one machine: a real Redis, the Slack, ARM and GCP stand-ins, moto, and the Procfile's processes.

Used by the integration tests, by `jitbot demo` and by the benchmarks, so that all three run the same
real thing: the `web` and `worker` commands as separate processes, talking to loopback servers only. The
processes find the clouds as in production, through each SDK's own credential chain: a managed identity
for Azure (the ARM stand-in's token endpoint), Application Default Credentials for GCP (a file whose
tokens come from the GCP stand-in), the standard chain for AWS (moto).

For fault injection it also plays the platform (stack_processes): more workers (`workers=2` runs `worker-1`,
`worker-2`; `sweepers` likewise), `kill` (a process and everything it forked, as when a container is killed),
`restart`, `restart_redis` (the embedded one, AOF on) and, with `supervise=True`, restarting any process that exits
on its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from jitbot.core.catalog import parse_catalog
from jitbot.providers.aws_settings import AwsSettings
from jitbot.providers.aws_sso_settings import SsoSettings
from jitbot.store import embedded
from jitbot.store.redis_url import open_redis
from jitbot.testing.arm_standin import ArmStandIn
from jitbot.testing.gcp_standin import GcpStandIn
from jitbot.testing.host import alive, free_port
from jitbot.testing.identity_center import IdentityCenter, seed_identity_center
from jitbot.testing.slack_limits import SlackLimits
from jitbot.testing.slack_sender import SlackSender
from jitbot.testing.slack_standin import SlackStandIn
from jitbot.testing.stack_processes import PROCESSES, ProcessControl

AWS_TEST_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
# what jitbot or a cloud SDK's credential chain reads from the environment: the stack sets its own, and a
# developer's real settings (an AZURE_CLIENT_SECRET, a GOOGLE_APPLICATION_CREDENTIALS) never reach the processes
OWN_PREFIXES = (
    *("AWS_", "SLACK_", "REDIS_", "JITBOT_"),
    *("AZURE_", "IDENTITY_", "MSI_", "IMDS_"),  # azure-identity: service principal, workload and managed identity
    *("GOOGLE_", "GCP_", "GCE_", "CLOUDSDK_"),  # google-auth: ADC file, metadata server, gcloud's configuration
)
OWN_NAMES = {"HOST", "LOG_LEVEL", "WEB_CONCURRENCY", "GUNICORN_CMD_ARGS"}  # jitbot's too, and not prefixed
LOOPBACK = "127.0.0.1,localhost"  # every server the processes talk to is on this machine: no proxy in between
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


class Stack(ProcessControl):
    def __init__(
        self,
        home: Path,
        catalog: str,
        *,
        redis_url: str | None = None,
        workers: int = 1,
        sweepers: int = 1,
        supervise: bool = False,
        settings: Mapping[str, str] | None = None,
        moto_process: bool = False,
        slack_limits: bool = False,
    ) -> None:
        """`settings`: more environment for the processes (JITBOT_…). `moto_process`: moto runs in a process of
        its own (`moto_pid`), which a test may freeze with SIGSTOP, rather than in a thread of this one.
        `slack_limits`: the Slack stand-in enforces Slack's rate limits and jitbot paces itself under them; without,
        neither (JITBOT_SLACK_PACING=0), and functional tests run at full speed."""
        self.home = home
        self.catalog_text = catalog
        self.redis_url = redis_url  # None: the processes share the embedded Redis under home/.jitbot
        self.secret = "stack-signing-secret"
        self.port = free_port()
        self.slack = SlackStandIn()
        self.slack.limits = SlackLimits() if slack_limits else None
        self.slack_limits = slack_limits
        self.arm = ArmStandIn()  # PIM's five-minute rule is on: a test that revokes sooner sets `arm.pim.min_active`
        self.gcp = GcpStandIn()  # holds no resource until a test puts a policy in `gcp.policies`
        self.moto_url = ""
        self.moto_pid = 0
        self.moto_process = moto_process
        self.settings = dict(settings or {})
        self.processes = {}
        # process name → command: the Procfile's, with `worker` numbered when there is more than one
        self.commands = {"web": PROCESSES["web"]}
        if workers < 1:
            raise ValueError("a stack needs at least one worker")
        worker_names = ["worker"] if workers == 1 else [f"worker-{i}" for i in range(1, workers + 1)]
        self.commands.update(dict.fromkeys(worker_names, PROCESSES["worker"]))
        sweeper_names = ["sweeper"] if sweepers == 1 else [f"sweeper-{i}" for i in range(1, sweepers + 1)]
        self.commands.update(dict.fromkeys(sweeper_names, PROCESSES["sweeper"]))
        self.supervise = supervise
        self.restarts = []
        self._moto: Any = None
        self._adc = home / "gcp-standin-adc.json"  # written by the GCP stand-in on start
        self._logs = {}
        self._guard = threading.RLock()
        self._supervisor: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> Stack:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "jitbot.yml").write_text(self.catalog_text)
        self.slack.start()
        try:
            self.arm.start()
            self.gcp.start()
            self._adc = self.gcp.write_adc(self.home)
            self._start_moto()
            for name in self.commands:
                self.start_process(name)
            self.wait_healthy()
        except BaseException:
            self.stop()  # `with Stack(...)` never reaches __exit__ when start fails: leave no process behind
            raise
        if self.supervise:
            self._supervisor = threading.Thread(target=self._watch, name="stack-supervisor", daemon=True)
            self._supervisor.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=5)
        for name in list(self.processes):
            self.stop_process(name)
        self.slack.stop()
        self.arm.stop()
        self.gcp.stop()
        if isinstance(self._moto, subprocess.Popen):
            self._moto.kill()
            self._moto.wait(timeout=10)
        elif self._moto is not None:
            self._moto.stop()
        if self.redis_url is None:
            _shutdown(self.home / ".jitbot")  # as embedded.stop does, without its ~3 s of retries (see restart_redis)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.upper().startswith(OWN_PREFIXES) and k not in OWN_NAMES}
        bin_dir = str(Path(sys.executable).parent)
        settings = {
            "PATH": bin_dir + os.pathsep + keep.get("PATH", ""),
            "SLACK_BOT_TOKEN": "xoxb-stack-test",
            "SLACK_SIGNING_SECRET": self.secret,
            "SLACK_API_URL": self.slack.url,
            "JITBOT_CONFIG": str(self.home / "jitbot.yml"),
            "PORT": str(self.port),
            "AWS_ENDPOINT_URL": self.moto_url,
            "AZURE_ARM_ENDPOINT": self.arm.url,
            "IDENTITY_ENDPOINT": self.arm.identity_endpoint,  # a managed identity, as azure-identity finds it
            "IDENTITY_HEADER": self.arm.identity_header,
            "GCP_RESOURCEMANAGER_ENDPOINT": self.gcp.url,
            "GOOGLE_APPLICATION_CREDENTIALS": str(self._adc),
            "NO_PROXY": LOOPBACK,
            "no_proxy": LOOPBACK,
            "PYTHONUNBUFFERED": "1",
            "JITBOT_SLACK_PACING": "1" if self.slack_limits else "0",
            **AWS_TEST_ENV,
        }
        if self.redis_url:
            settings["REDIS_URL"] = self.redis_url
        return {**keep, **settings, **self.settings}

    def restart_redis(self, down_for: float = 0.0, timeout: float = 30.0) -> float:
        """Stop the embedded Redis (SHUTDOWN: the AOF is fsynced) and start it again on the same home.

        The processes keep running, as they would while a managed Redis restarts or fails over (and one of
        them may start the embedded Redis again first: `ensure_running`). Returns once Redis answers again
        (its AOF loaded), with the seconds it did not answer.

        Not `embedded.stop`: its client retries the SHUTDOWN when the server hangs up (redis-py's default
        retries, ~3 s), and a retry reaching a Redis that a restarted process has just started stops that too.
        """
        if self.redis_url is not None:
            raise RuntimeError("restart_redis works on the embedded Redis only (this stack uses REDIS_URL)")
        home = self.home / ".jitbot"
        pid_file = home / "redis.pid"
        old_pid = int(pid_file.read_text().strip()) if pid_file.exists() else None
        started = time.monotonic()
        _shutdown(home)
        deadline = started + timeout
        while old_pid is not None and alive(old_pid):  # gone for good before the new one binds the socket
            if time.monotonic() > deadline:
                raise RuntimeError(f"the embedded Redis (pid {old_pid}) did not shut down within {timeout}s")
            time.sleep(0.05)
        time.sleep(down_for)
        embedded.ensure_running(home)  # returns once it answers PING, that is once its AOF is loaded
        while True:
            try:
                self.redis().ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        return time.monotonic() - started

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
        url = self.redis_url or embedded.url_for(self.home / ".jitbot")
        return open_redis(url, self.settings.get("REDIS_TLS_CA")).client

    def aws(self, service: str, region: str = "us-east-1", **credentials: str) -> Any:
        keys = credentials or {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        return boto3.client(service, endpoint_url=self.moto_url, region_name=region, **keys)  # type: ignore[call-overload]

    def identity_center(self, resource: str, session_duration: str = "PT1H") -> IdentityCenter:
        """AWS IAM Identity Center in moto as the catalog's `mode: sso` resource names it: its instance and its
        permission set (created if need be); add users with `IdentityCenter.add_user`."""
        found = parse_catalog(self.catalog_text).resources[resource]
        region = found.settings_as(SsoSettings).region  # Identity Center lives in the catalog's region only
        sso, store = self.aws("sso-admin", region), self.aws("identitystore", region)
        return seed_identity_center(sso, store, found, session_duration)

    def logs(self, name: str | None = None) -> str:
        names = [name] if name else list(self.commands)
        return "".join(
            (self.home / f"{n}.log").read_text(errors="replace") for n in names if (self.home / f"{n}.log").exists()
        )

    def _start_moto(self) -> None:
        from moto.server import ThreadedMotoServer

        from jitbot.testing import aws_limits

        port = free_port()
        self.moto_url = f"http://127.0.0.1:{port}"
        if self.moto_process:
            command = [sys.executable, "-m", "jitbot.testing.moto_process", str(port)]
            with open(self.home / "moto.log", "ab") as log:
                self._moto = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            self.moto_pid = self._moto.pid
            _wait_listening(port, self._moto)
        else:
            aws_limits.enforce()  # the server answers from this process's moto: it refuses what AWS refuses
            self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            self._moto.start()
        # moto's backends are per process, not per server: start from an empty account every time
        urllib.request.urlopen(urllib.request.Request(f"{self.moto_url}/moto-api/reset", method="POST"), timeout=10)
        iam = self.aws("iam")
        for resource in parse_catalog(self.catalog_text).resources.values():
            if resource.kind == "aws":  # STS mode: the role it assumes; Identity Center (`mode: sso`) has none
                name = resource.settings_as(AwsSettings).role_arn.rsplit("/", 1)[-1]
                iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST))


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"moto did not listen on {port} (exit code {process.poll()})")


def _shutdown(home: Path) -> None:
    """SHUTDOWN the embedded Redis once (it saves, and fsyncs its AOF); nothing if it is not running."""
    once = redis.Redis(unix_socket_path=str(embedded.socket_path(home)), retry=Retry(NoBackoff(), 0))
    with contextlib.suppress(redis.ConnectionError):  # not running, or hanging up as it goes: both mean stopped
        once.shutdown()
