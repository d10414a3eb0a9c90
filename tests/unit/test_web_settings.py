"""The web process's settings from the environment: LOG_LEVEL, WEB_CONCURRENCY, GUNICORN_CMD_ARGS, the bind address;
gunicorn's own lines rendered as jitbot's; `jitbot --version`."""

import io
import json
import logging
from datetime import timedelta
from importlib import metadata
from types import SimpleNamespace

import pytest

from jitbot.config import Config
from jitbot.core.errors import ConfigError
from jitbot.observability import logs
from jitbot.ops.cli import main
from jitbot.web import Server

pytestmark = pytest.mark.usefixtures("restore_logging")


@pytest.mark.parametrize(
    ("given", "level"),
    [(None, logging.INFO), ("DEBUG", logging.DEBUG), ("warning", logging.WARNING), ("ERROR", logging.ERROR)],
)
def test_log_level_when_given_or_not_then_that_level(given: str | None, level: int) -> None:
    assert Config.from_env({"LOG_LEVEL": given} if given else {}).log_level == level


@pytest.mark.parametrize("given", ["VERBOSE", "warn", "10"])
def test_log_level_when_not_a_level_then_config_error_naming_it(given: str) -> None:
    with pytest.raises(ConfigError, match=f"LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, not '{given}'"):
        Config.from_env({"LOG_LEVEL": given})


def test_web_concurrency_when_unset_then_two_workers_else_as_given() -> None:
    assert Config.from_env({}).web_concurrency == 2
    assert Config.from_env({"WEB_CONCURRENCY": "5"}).web_concurrency == 5


@pytest.mark.parametrize("given", ["0", "two", "-1"])
def test_web_concurrency_when_not_a_positive_number_then_config_error_naming_it(given: str) -> None:
    with pytest.raises(ConfigError, match="WEB_CONCURRENCY must be a number of worker processes"):
        Config.from_env({"WEB_CONCURRENCY": given})


@pytest.mark.parametrize(
    ("env", "bind"),
    [
        ({}, "0.0.0.0:3000"),
        ({"PORT": "8080"}, "0.0.0.0:8080"),
        ({"HOST": "127.0.0.1", "PORT": "8080"}, "127.0.0.1:8080"),
        ({"JITBOT_BIND": "10.0.0.7"}, "10.0.0.7:3000"),
        ({"JITBOT_BIND": "10.0.0.7:9000", "HOST": "127.0.0.1", "PORT": "8080"}, "10.0.0.7:9000"),
        ({"JITBOT_BIND": "::"}, "[::]:3000"),
        ({"JITBOT_BIND": "[::1]:9000"}, "[::1]:9000"),
    ],
)
def test_bind_when_given_then_host_and_port_as_gunicorn_takes_them(env: dict[str, str], bind: str) -> None:
    config = Config.from_env(env)
    assert config.bind == bind
    assert config.port == int(bind.rsplit(":", 1)[1])  # what Socket Mode's probe server listens on too


@pytest.mark.parametrize(
    ("name", "given"), [("JITBOT_BIND", "host:http"), ("HOST", ":3000"), ("JITBOT_BIND", "[::1]x")]
)
def test_bind_when_malformed_then_config_error_naming_the_variable(name: str, given: str) -> None:
    with pytest.raises(ConfigError, match=f"{name} must be a host or host:port"):
        Config.from_env({name: given})


def test_gunicorn_cmd_args_when_unclosed_quote_then_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="GUNICORN_CMD_ARGS"):
        Config.from_env({"GUNICORN_CMD_ARGS": "--name 'jitbot"})


def test_server_when_only_jitbot_settings_then_they_configure_gunicorn() -> None:
    cfg = Server(Config.from_env({"WEB_CONCURRENCY": "3", "JITBOT_BIND": "127.0.0.1:4000", "LOG_LEVEL": "ERROR"})).cfg
    assert (cfg.workers, cfg.bind, cfg.loglevel) == (3, ["127.0.0.1:4000"], "error")
    assert (cfg.worker_class_str, cfg.threads, cfg.logger_class) == ("gthread", 8, logs.GunicornLogger)


def test_server_when_gunicorn_cmd_args_given_then_they_win_over_jitbot_settings() -> None:
    env = {"WEB_CONCURRENCY": "3", "GUNICORN_CMD_ARGS": "--workers 5 --bind 127.0.0.1:9999 --timeout 90"}
    cfg = Server(Config.from_env(env)).cfg
    assert (cfg.workers, cfg.bind, cfg.timeout, cfg.threads) == (5, ["127.0.0.1:9999"], 90, 8)


def gunicorn_logger(env: dict[str, str]) -> tuple[logs.GunicornLogger, io.StringIO]:
    """gunicorn's logger as web's processes have it: jitbot's logging configured at LOG_LEVEL first."""
    config, stream = Config.from_env(env), io.StringIO()
    logs.configure(stream, config.log_level)
    return logs.GunicornLogger(Server(config).cfg), stream


def test_gunicorn_logger_when_access_log_not_asked_for_then_no_access_line() -> None:
    logger, stream = gunicorn_logger({})
    logger.access(SimpleNamespace(status_code=200), SimpleNamespace(method="GET", path="/livez"), {}, timedelta())
    assert stream.getvalue() == ""


def test_gunicorn_logger_when_it_logs_then_json_lines_and_the_access_line_without_query() -> None:
    logger, stream = gunicorn_logger({"GUNICORN_CMD_ARGS": "--access-logfile -"})
    logger.info("Booting worker with pid: %s", 4242)
    request = SimpleNamespace(method="GET", path="/readyz", query="token=xoxb-1234-secret")
    environ = {"QUERY_STRING": "token=xoxb-1234-secret", "RAW_URI": "/readyz?token=xoxb-1234-secret"}
    logger.access(SimpleNamespace(status_code=503), request, environ, timedelta(milliseconds=12, microseconds=340))
    booted, access = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (booted["event"], booted["logger"]) == ("Booting worker with pid: 4242", "gunicorn.error")
    assert {k: access[k] for k in ("event", "logger", "level", "method", "path", "status", "duration_ms")} == {
        "event": "request",
        "logger": "gunicorn.access",
        "level": "info",
        "method": "GET",
        "path": "/readyz",
        "status": 503,
        "duration_ms": 12.3,
    }
    assert "token" not in stream.getvalue()


def test_gunicorn_logger_when_log_level_warning_then_no_info_or_access_lines() -> None:
    logger, stream = gunicorn_logger({"LOG_LEVEL": "WARNING", "GUNICORN_CMD_ARGS": "--access-logfile -"})
    logger.info("Booting worker with pid: %s", 4242)
    logger.access(SimpleNamespace(status_code=200), SimpleNamespace(method="GET", path="/livez"), {}, timedelta())
    logger.warning("Worker timeout (pid:%s)", 4242)
    [line] = stream.getvalue().splitlines()
    assert (json.loads(line)["event"], json.loads(line)["level"]) == ("Worker timeout (pid:4242)", "warning")


def test_cli_when_version_asked_then_installed_version_and_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"jitbot {metadata.version('jitbot')}\n"
