"""What each process logs while Redis is away, beside what it logs idle with Redis up, in the same run.

A fresh jitbot (the Procfile's processes, embedded Redis) idles for `--seconds` (the baseline), then its Redis is
stopped for as long (SHUTDOWN, then started again on the same files): the log lines and bytes each process wrote in
each window. With jitbot's backoff a process writes a line per try (1, 2, 4… up to 30 s apart); RQ's own loop in
the worker logs its retries too.
Run: .venv/bin/python bench/outage.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jitbot.testing.stack import Stack
from jitbot.testing.stack_processes import PROCESSES
from tests.integration.conftest import CATALOG


def logged(stack: Stack, name: str, start: datetime, end: datetime) -> list[str]:
    """The JSON log lines process `name` stamped in [start, end)."""
    stamped = (line for line in stack.logs(name).splitlines() if line.startswith("{"))
    return [line for line in stamped if start <= datetime.fromisoformat(json.loads(line)["timestamp"]) < end]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    window = timedelta(seconds=parser.parse_args().seconds)
    with tempfile.TemporaryDirectory() as home, Stack(Path(home), CATALOG) as stack:
        time.sleep(3)  # start-up lines are not idle lines
        idle = datetime.now(UTC)
        time.sleep(window.total_seconds())
        went = datetime.now(UTC)
        stack.restart_redis(down_for=window.total_seconds() + 1)
        windows = {"idle, Redis up": (idle, idle + window), "Redis away": (went + timedelta(seconds=1), went + window)}
        for label, (start, end) in windows.items():
            counts = {name: logged(stack, name, start, end) for name in PROCESSES}
            said = ", ".join(f"{name} {len(got)} lines / {sum(map(len, got)):,} B" for name, got in counts.items())
            print(f"{label} for {window.total_seconds():.0f} s: {said}")


if __name__ == "__main__":
    main()
