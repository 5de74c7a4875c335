"""The ``queueapp`` command. Thin: parses arguments and calls library functions."""

from __future__ import annotations

import argparse
import logging
import sys

from . import __version__
from .config import SETTINGS, ConfigError, load_config
from .logs import setup_logging

SETTING_NAMES = frozenset(s.name for s in SETTINGS)

log = logging.getLogger("queueapp.cli")

DESCRIPTION = """\
queueapp: a job queue appliance. One process serves an HTTP API, runs jobs by
priority with retries, delays and schedules, and keeps every acknowledged job in a
SQLite file.

  queueapp serve                      start on 127.0.0.1:3000 with ./queueapp.db
  queueapp serve --db /var/lib/queueapp/q.db --port 8080
  queueapp migrate --db q.db          create or upgrade the database, then exit

Every option can also come from the environment (QUEUEAPP_PORT=8080) or a TOML
file (--config queueapp.toml, with lines like: port = 8080).
"""


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML file of settings (env QUEUEAPP_CONFIG)")
    parser.add_argument("--db", metavar="PATH", help=_help("db"))


def _help(name: str) -> str:
    setting = next(s for s in SETTINGS if s.name == name)
    return f"{setting.help} Default {setting.default!r}; env {setting.env}."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="queueapp", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"queueapp {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the appliance (HTTP API and workers)")
    _add_common(serve)
    serve.add_argument("--host", help=_help("host"))
    serve.add_argument("--port", type=int, help=_help("port"))
    serve.add_argument("--durability", choices=["full", "normal"], help=_help("durability"))
    serve.add_argument("--handlers", metavar="MODULES", help=_help("handlers"))
    serve.add_argument("--concurrency", type=int, metavar="N", help=_help("concurrency"))
    serve.add_argument("--event-loop", choices=["auto", "asyncio", "uvloop"], help=_help("event_loop"))
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help=_help("log_level"))

    migrate = commands.add_parser("migrate", help="create or upgrade the database schema, then exit")
    _add_common(migrate)

    restore = commands.add_parser(
        "restore", help="bring back a backup (from a backup-data job) as the database; stop serve first")
    restore.add_argument("backup", metavar="FILE", help="the backup file")
    _add_common(restore)

    worker = commands.add_parser(
        "worker", help="run handlers from a module on jobs leased from a remote appliance")
    worker.add_argument("--url", default="http://127.0.0.1:3000", help="the appliance's base URL")
    worker.add_argument("--handlers", required=True, metavar="MODULES",
                        help="comma-separated modules whose @registry.handler functions run the jobs")
    worker.add_argument("--queue", default="default", help="queue to lease from")
    worker.add_argument("--concurrency", type=int, default=5, metavar="N", help="jobs run at once")
    worker.add_argument("--lease-ms", type=int, default=30_000, help="lease per job, renewed at a third")
    worker.add_argument("--grace-ms", type=int, default=10_000,
                        help="on SIGTERM, how long running jobs may finish before they are handed back")
    worker.add_argument("--token", default=None, help="bearer token (env QUEUEAPP_TOKEN)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "worker":
        setup_logging("info")
        return _worker(args)
    overrides = {k: v for k, v in vars(args).items() if k in SETTING_NAMES}
    try:
        config = load_config(overrides, args.config)
    except ConfigError as exc:
        print(f"queueapp: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_level)
    if args.command == "migrate":
        return _migrate(config.db)
    if args.command == "restore":
        return _restore(args.backup, config.db)
    return _serve(config)


def _restore(backup: str, db: str) -> int:
    from .store import restore_database

    try:
        restore_database(backup, db)
    except (OSError, ValueError) as exc:
        print(f"queueapp: cannot restore: {exc}", file=sys.stderr)
        return 1
    log.info("database restored", extra={"event": "db.restored", "db": db, "backup": backup})
    return 0


def _worker(args: argparse.Namespace) -> int:
    import asyncio
    import os
    import signal

    from .client import QueueClient, RemoteWorker
    from .workers.registry import registry

    try:
        registry.load_modules([m.strip() for m in args.handlers.split(",") if m.strip()])
    except ImportError as exc:
        print(f"queueapp: cannot import a handler module: {exc}", file=sys.stderr)
        return 2

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        token = args.token or os.environ.get("QUEUEAPP_TOKEN")
        async with QueueClient(args.url, token=token, queue=args.queue) as client:
            worker = RemoteWorker(client, registry, concurrency=args.concurrency,
                                  lease_ms=args.lease_ms, grace_s=args.grace_ms / 1000)
            await worker.run(stop)

    asyncio.run(run())
    return 0


def _migrate(db: str) -> int:
    from .store import migrate_database

    names = ", ".join(migrate_database(db)) or "none (up to date)"
    log.info("migrations applied", extra={"event": "db.migrated", "db": db, "applied": names})
    return 0


def _new_loop(choice: str):  # noqa: ANN202 - an asyncio event loop
    """uvloop when asked for or (``auto``) when installed: it roughly halves the cost of
    socket I/O per request. The standard loop otherwise."""
    import asyncio

    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise SystemExit("queueapp: event_loop is uvloop but uvloop is not installed") from None
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def _serve(config) -> int:  # noqa: ANN001 - Config
    from aiohttp import web

    from .app import make_app

    try:
        app = make_app(config)
    except ImportError as exc:
        print(f"queueapp: cannot import a handler module: {exc}", file=sys.stderr)
        return 2
    # The store's writer thread needs the GIL back after each fsync while the event
    # loop is busy; at the default 5 ms switch interval it waits that long per commit,
    # and enqueue throughput falls by a third (measured with scripts/bench).
    sys.setswitchinterval(0.0005)
    log.info(
        "listening", extra={"event": "server.listening", "host": config.host, "port": config.port}
    )
    web.run_app(app, host=config.host, port=config.port, print=None, access_log=None,
                shutdown_timeout=config.shutdown_grace_ms / 1000 + 5,
                loop=_new_loop(config.event_loop))
    return 0


if __name__ == "__main__":
    sys.exit(main())
