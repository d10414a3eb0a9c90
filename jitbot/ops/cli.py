"""The `jitbot` console command: web, socket, worker, sweeper, demo, check, reconcile (--clouds), redis-stop, audit,
report; --version."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from importlib import metadata

import redis

from jitbot import runtime
from jitbot.config import Config
from jitbot.core.catalog import load_catalog
from jitbot.core.errors import ConfigError, GaveUp
from jitbot.observability.outage import describe
from jitbot.store import embedded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jitbot", description="Slack-native just-in-time cloud access.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_installed_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("web", help="serve Slack's requests (gunicorn) on $PORT")
    sub.add_parser("socket", help="serve Slack's requests over Socket Mode ($SLACK_APP_TOKEN), probes on $PORT")
    sub.add_parser("worker", help="run an RQ worker with the scheduler and the reconciler")
    sub.add_parser("sweeper", help="revoke grants as they fall due (claims from the expiry index, many at a time)")
    sub.add_parser("demo", help="play the whole flow locally: no Slack, cloud or Redis needed")
    check_cmd = sub.add_parser("check", help="validate the catalog ($JITBOT_CONFIG); --live asks each cloud too")
    check_cmd.add_argument("--live", action="store_true", help="ask each provider whether it can act (read-only)")
    reconcile_cmd = sub.add_parser("reconcile", help="re-drive everything overdue once, now")
    reconcile_cmd.add_argument(
        "--clouds", action="store_true", help="and scan each cloud for access jitbot made that no live grant explains"
    )
    sub.add_parser("redis-stop", help="stop the embedded Redis under ./.jitbot/")
    audit_cmd = sub.add_parser("audit", help="export or verify the hash-chained audit trail")
    audit_cmd.add_argument("action", choices=["export", "verify"])
    audit_cmd.add_argument("--since", help="ISO date or time (UTC), inclusive")
    audit_cmd.add_argument("--until", help="ISO date or time (UTC), exclusive")
    audit_cmd.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    audit_cmd.add_argument("--file", help="verify: an exported JSONL file instead of the live trail")
    report = sub.add_parser("report", help="access review: grants, approvals, duration creep (Markdown, CSV, PNG)")
    report.add_argument("--period", default="90d", help="how far back, e.g. 30d, 90d (default 90d)")
    report.add_argument("--bucket", choices=["week", "month"], default="week")
    report.add_argument("--out", default="jitbot-report", help="folder for report.md, report.csv and the chart")
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as error:
        embedded.release()  # a process that cannot start stops the embedded Redis it started, not one it found
        print(f"jitbot: {error}", file=sys.stderr)
        return 2
    except GaveUp as error:  # for a supervisor that restarts on exit: one line, not a traceback
        print(f"jitbot: {error}", file=sys.stderr)
        return 3
    except redis.RedisError as error:  # a one-off command has no outage to wait out: say so, once
        print(f"jitbot: cannot reach Redis (REDIS_URL): {describe(error)}", file=sys.stderr)
        return 3


def _web(args: argparse.Namespace) -> int:
    from jitbot.web import Server

    config = runtime.current().config  # fail fast, in gunicorn's master, on a bad catalog or a missing setting
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"):
        config.require(name)
    Server(config).run()
    return 0


def _socket(args: argparse.Namespace) -> int:
    from jitbot.web import serve_socket_mode

    config = Config.from_env()  # what is missing is said before anything starts (the embedded Redis, say)
    for name in ("SLACK_APP_TOKEN", "SLACK_BOT_TOKEN"):  # no signing secret: Socket Mode never uses one
        config.require(name)
    serve_socket_mode(runtime.current(someone_waiting=True))  # listeners answer while Slack waits for the ack
    return 0


def _installed_version() -> str:
    try:
        return metadata.version("jitbot")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def _worker(args: argparse.Namespace) -> int:
    from workers.worker import run

    run()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from jitbot.ops.demo import play

    return play()


def _sweeper(args: argparse.Namespace) -> int:
    from jitbot.sweeper import run

    run()
    return 0


def _check(args: argparse.Namespace) -> int:
    from jitbot import providers
    from jitbot.ops.check import check, people_warnings, render, render_who, who_may
    from jitbot.slack import workspace
    from jitbot.slack.notify import web_client

    config = Config.from_env()
    catalog = load_catalog(config.config_path)
    rows = check(catalog, (lambda kind: providers.build(kind, config)) if args.live else None)
    print(f"{config.config_path}: valid, {len(catalog.resources)} resources")
    print(render(rows))
    slack: workspace.Workspace | None = None
    if args.live:
        slack = workspace.check_workspace(web_client(config.require("SLACK_BOT_TOKEN"), config.slack_api_url), catalog)
        print(f"\nSlack ({config.slack_api_url})\n{workspace.render(slack)}")
    print("\nwho may do what" + ("" if slack else " (--live expands groups and checks each id with Slack)"))
    print(render_who(who_may(catalog, slack.name if slack else str)))
    for warning in people_warnings(catalog):
        print(f"warning: {warning}")
    failed = [row.resource for row in rows if not row.ok]
    if failed:
        print(f"jitbot cannot act on: {', '.join(failed)}", file=sys.stderr)
    if slack and slack.failed:
        print(f"Slack is not ready: {', '.join(slack.failed)}", file=sys.stderr)
    return 1 if failed or (slack and slack.failed) else 0


def _one_off() -> runtime.Runtime:
    """The runtime of a one-off command (reconcile, audit, report): it works on the store jitbot runs on, and never
    starts an empty embedded one in a folder where jitbot does not run (embedded.open_existing)."""
    return runtime.current(start_store=False)


def _reconcile(args: argparse.Namespace) -> int:
    rt = _one_off()
    print(f"re-driven: {rt.lifecycle.reconcile()}")
    if not args.clouds:
        return 0
    scan = rt.drift.run()
    print(f"clouds scanned: {scan.explained} explained by live grants, {len(scan.orphans)} orphaned")
    for orphan in scan.orphans:
        outcome = f"NOT removed: {orphan.error}" if orphan.error else "removed"
        print(f"  {orphan.resource}: {orphan.held.what} (for {', '.join(sorted(orphan.held.holders))}): {outcome}")
    for resource, why in scan.unreadable:
        print(f"  {resource}: could not be scanned: {why}")
    return 0 if scan.clean else 1


def _redis_stop(args: argparse.Namespace) -> int:
    stopped = embedded.stop(Config.from_env().home)
    print("embedded Redis stopped" if stopped else "embedded Redis was not running")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from jitbot.ops.audit_trail import export_trail, verify_trail

    if args.action == "export":
        return export_trail(_one_off().store, args.since, args.until, args.format, sys.stdout)
    return verify_trail(None if args.file else _one_off().store, args.file, sys.stdout)


def _report(args: argparse.Namespace) -> int:
    from jitbot.ops.report_command import run_report

    return run_report(_one_off(), args.period, args.bucket, args.out, sys.stdout)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "web": _web,
    "socket": _socket,
    "worker": _worker,
    "demo": _demo,
    "check": _check,
    "reconcile": _reconcile,
    "sweeper": _sweeper,
    "redis-stop": _redis_stop,
    "audit": _audit,
    "report": _report,
}

if __name__ == "__main__":
    sys.exit(main())
