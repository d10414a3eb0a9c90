"""What RQ imports: `jitbot.jobs.entry.<name>` (JobName.path) runs that job against this process's runtime.

No job is written out here: every JobName resolves through the module's `__getattr__` (PEP 562), so the table in
registry stays the only list of jobs, and a stock `rq worker` runs them as well as `jitbot worker` does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jitbot import runtime
from jitbot.jobs.names import JobName
from jitbot.jobs.registry import run


def for_this_process(name: JobName) -> Callable[..., None]:
    """The job as RQ calls it, with the ids it was queued with; the runtime is built on first use, from the
    environment, in the process that runs the job."""

    def job(*args: Any) -> None:
        run(runtime.current(), name, *args)

    return job


def __getattr__(attribute: str) -> Callable[..., None]:
    try:
        name = JobName(attribute)
    except ValueError:  # RQ, import machinery and inspect all probe with hasattr
        raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}") from None
    return for_this_process(name)
