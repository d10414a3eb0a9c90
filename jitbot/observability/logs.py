"""Structured JSON logs (structlog) for jitbot and for the libraries beneath it, all passed through redaction."""

from __future__ import annotations

import logging
import sys
from datetime import timedelta
from typing import Any, TextIO

import structlog
from gunicorn import glogging
from structlog.tracebacks import ExceptionDictTransformer

from jitbot.core.redaction import redact

QUIET = {
    "slack_sdk": logging.WARNING,
    "slack_bolt": logging.INFO,
    "botocore": logging.WARNING,
    "boto3": logging.WARNING,
    "urllib3": logging.WARNING,
}


def _scrub_rendered(_logger: Any, _name: str, rendered: Any) -> Any:
    return redact(rendered) if isinstance(rendered, str) else rendered


def _rendering(terminal: bool) -> list[Any]:
    """JSON for machines (production is not a terminal); readable lines for a person at a terminal.

    Neither prints the local variables of a traceback: a frame may hold a secret.
    """
    if terminal:
        console = structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
        return [structlog.processors.format_exc_info, console, _scrub_rendered]
    exceptions = structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
    return [exceptions, structlog.processors.JSONRenderer(), _scrub_rendered]


def configure(stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Send structlog and the standard library's loggers (rq, bolt, botocore) through one redacting renderer."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    stream = stream or sys.stderr
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *_rendering(stream.isatty())],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    # No line says where in the code, on which thread or in which process it was made: the standard library need
    # not work it out for every record (the logging HOWTO's "Optimization" section names these switches:
    # https://docs.python.org/3/howto/logging.html#optimization): ~10% of the CPU of an audit line.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    for name, quiet in QUIET.items():
        logging.getLogger(name).setLevel(max(quiet, level))


def get(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


_access = get("gunicorn.access")


class GunicornLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's own lines as jitbot's: its error log (start-up, workers booting and exiting, at gunicorn's
    `loglevel`) and, when asked for, one access line per request go through the root handler `configure` set up,
    so they come out as the same redacted JSON lines. Access lines are off unless --access-logfile is given (in
    GUNICORN_CMD_ARGS), as gunicorn's own default has it: a flood of forged requests must not become a flood of
    lines (each refusal is counted and sampled already). Destinations and formats (--error-logfile,
    --access-logfile's path, --access-logformat) are not used: a process's lines all go to one stream."""

    def setup(self, cfg: Any) -> None:
        self.cfg = cfg  # gunicorn hands a new one on reload
        self.error_log.setLevel(self.LOG_LEVELS.get(cfg.loglevel.lower(), logging.INFO))
        for log in (self.error_log, self.access_log):
            log.handlers.clear()
            log.propagate = True

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta) -> None:
        """One line a request, at info: method, path, status, duration — never the query string, a header or the
        body (the path is gunicorn's, without the query)."""
        if not self.cfg.accesslog:
            return
        duration_ms = round(request_time.total_seconds() * 1000, 1)
        _access.info("request", method=req.method, path=req.path, status=resp.status_code, duration_ms=duration_ms)
