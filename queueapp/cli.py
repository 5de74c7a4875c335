"""The ``queueapp`` command. Thin: parses arguments and calls library functions."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .admin import COMMANDS as ADMIN_COMMANDS
from .admin import add_commands as add_admin_commands
from .admin import run as run_admin
from .clock import to_iso
from .completion import SHELLS, script
from .config import SETTINGS, ConfigError
from .logs import setup_logging
from .settings import SECRET_FILES, load_config
from .version import __version__

if TYPE_CHECKING:
    from asyncio import Event

SETTING_NAMES = frozenset(s.name for s in SETTINGS) | frozenset(SECRET_FILES)

log = logging.getLogger("queueapp.cli")

DESCRIPTION = """\
queueapp: a job queue appliance. One process serves an HTTP API, runs jobs by
priority with retries, delays and schedules, and keeps every acknowledged job in a
SQLite file.

  queueapp serve                      start on 127.0.0.1:3000 with ./queueapp.db
  queueapp serve --db /var/lib/queueapp/q.db --port 8080
  queueapp migrate --db q.db          create or upgrade the database, then exit
  queueapp copy --from q.db --to postgresql://user@host/jobs   move to PostgreSQL
  queueapp jobs ls --state failed     operate a running appliance (also: queues,
                                      schedules, enqueue, stats; -o json)

Every option can also come from the environment (QUEUEAPP_PORT=8080) or a TOML
file (--config queueapp.toml, with lines like: port = 8080).
"""


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML file of settings (env QUEUEAPP_CONFIG)")
    _add_setting(parser, "db")


def _add_setting(parser: argparse.ArgumentParser, name: str) -> None:
    setting = next(s for s in SETTINGS if s.name == name)
    shown = "(hidden)" if setting.secret else repr(setting.default)
    parser.add_argument(
        setting.option, dest=name, type=setting.kind, choices=setting.choices,
        metavar=None if setting.choices else name.split("_")[-1].upper(),
        help=f"{setting.help} Default {shown}; env {setting.env}.",
    )
    if setting.secret:
        parser.add_argument(
            f"{setting.option}-file", dest=f"{name}_file", metavar="FILE",
            help=f"Read {name} from FILE (a systemd credential, a container secret); env {setting.env}_FILE.",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="queueapp", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=version_text())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the appliance (HTTP API and workers)")
    serve.add_argument("--config", metavar="FILE", help="TOML file of settings (env QUEUEAPP_CONFIG)")
    for setting in SETTINGS:  # every setting is an option
        _add_setting(serve, setting.name)

    migrate = commands.add_parser("migrate", help="create or upgrade the database schema, then exit")
    _add_common(migrate)

    check = commands.add_parser(
        "check", help="check the database's invariants (with the appliance stopped); exit 1 on any problem")
    _add_common(check)

    restore = commands.add_parser(
        "restore", help="bring back a backup (from a backup-data job) as the database, or rebuild it from a"
                        " replica folder (--from) as of any second it keeps; stop serve first")
    restore.add_argument("backup", metavar="FILE", nargs="?", help="the backup file")
    restore.add_argument("--from", dest="replica", metavar="DIR", help="a replica folder (replicate_to)")
    restore.add_argument("--to-time", metavar="TIME",
                         help="with --from: as of this time (ISO 8601, or ms since the epoch); default: the last"
                              " commit")
    restore.add_argument("--to", dest="target", metavar="FILE",
                         help="with --from: the database file to make (must not exist; default: --db)")
    _add_common(restore)

    copy = commands.add_parser(
        "copy", help="copy an appliance's SQLite file into an empty PostgreSQL database (both stopped)")
    copy.add_argument("--from", dest="source", required=True, metavar="FILE", help="the SQLite database file")
    copy.add_argument("--to", dest="target", required=True, metavar="URL", help="postgresql://user@host:5432/dbname")

    worker = commands.add_parser(
        "worker", help="run handlers from a module on jobs leased from a remote appliance")
    worker.add_argument("--url", default="http://127.0.0.1:3000", help="the appliance's base URL")
    worker.add_argument("--handlers", required=True, metavar="MODULES",
                        help="comma-separated modules whose @registry.handler functions run the jobs"
                             " (the current folder is searched first)")
    worker.add_argument("--queue", default="default", help="queue to lease from")
    worker.add_argument("--concurrency", type=int, default=5, metavar="N", help="jobs run at once")
    worker.add_argument("--lease-ms", type=int, default=30_000, help="lease per job, renewed at a third")
    worker.add_argument("--grace-ms", type=int, default=10_000,
                        help="on SIGTERM, how long running jobs may finish before they are handed back")
    worker.add_argument("--token", default=None, help="bearer token (env QUEUEAPP_TOKEN)")
    worker.add_argument("--name", default=None,
                        help="kept with each job as who ran it (default: host:pid)")
    worker.add_argument("--cacert", default=None, metavar="FILE",
                        help="CA certificate(s) to verify an https:// appliance with (default: the system's)")
    standby = commands.add_parser(
        "standby", help="keep a copy of a running appliance's replica folder (replicate_to) on this host, over its"
                        " API, until stopped; queueapp restore --from DIR rebuilds the database from it")
    standby.add_argument("--primary", required=True, metavar="URL", help="the appliance's base URL")
    standby.add_argument("--to", dest="folder", required=True, metavar="DIR", help="the folder the copy is kept in")
    standby.add_argument("--token-file", metavar="FILE",
                         help="read the token (or an admin key of every queue) from FILE (or env QUEUEAPP_TOKEN)")
    standby.add_argument("--cacert", default=None, metavar="FILE",
                         help="CA certificate(s) to verify an https:// appliance with (default: the system's)")
    standby.add_argument("--name", default=None, help="who it is to the primary (default: host:pid)")
    openapi = commands.add_parser(
        "openapi", help="print the API's OpenAPI description (as /openapi.json answers it under a token)")
    openapi.add_argument("--no-auth", action="store_true", help="as answered when no token is configured")
    completion = commands.add_parser(
        "completion", help="print the shell's completion script: source <(queueapp completion bash)")
    completion.add_argument("shell", choices=SHELLS)
    add_admin_commands(commands)
    return parser


def version_text() -> str:
    """The version, the SQLite it carries, and the JSON library and event loop it uses."""
    from .jsonfast import LIBRARY
    from .store import engine_version

    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    return f"queueapp {__version__} ({engine_version()}, JSON {LIBRARY}, event loop {loop})"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command in ("worker", "copy", "openapi", "completion", "standby"):
        return _without_settings(parser, args)
    if args.command in ADMIN_COMMANDS:
        return run_admin(args)
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
        if args.replica:
            return _restore_replica(args.replica, args.target or config.db, args.to_time)
        if not args.backup or args.to_time or args.target:
            print("queueapp: restore takes a backup FILE, or --from DIR [--to-time T] [--to FILE]", file=sys.stderr)
            return 2
        return _restore(args.backup, config.db)
    if args.command == "check":
        return _check(config.db)
    return _serve(config)


def _without_settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """The commands that read no settings file: they take all they need as options."""
    if args.command == "worker":
        setup_logging("info")
        return _worker(args)
    if args.command == "copy":
        return _copy(args.source, args.target)
    if args.command == "standby":
        setup_logging("info")
        return _standby(args)
    if args.command == "openapi":
        return _openapi(auth=not args.no_auth)
    print(script(parser, args.shell), end="")
    return 0


def _restore(backup: str, db: str) -> int:
    from .store import DatabaseInUse, restore_database

    try:
        restore_database(backup, db)
    except (OSError, ValueError, DatabaseInUse) as exc:
        print(f"queueapp: cannot restore: {exc}", file=sys.stderr)
        return 1
    log.info("database restored", extra={"event": "db.restored", "db": db, "backup": backup})
    return 0


def _standby(args: argparse.Namespace) -> int:
    import asyncio

    from .settings import secret_from_file
    from .standby import Standby, StandbyRefused

    try:
        token = secret_from_file(args.token_file) if args.token_file else os.environ.get("QUEUEAPP_TOKEN") or None
    except ValueError as exc:
        print(f"queueapp: --token-file: {exc}", file=sys.stderr)
        return 2

    async def run(stop: asyncio.Event) -> None:
        await Standby(args.primary, Path(args.folder), token, args.cacert, args.name).run(stop)

    try:
        asyncio.run(_until_stopped(run))
    except StandbyRefused as exc:
        print(f"queueapp: {exc}", file=sys.stderr)
        return 1
    return 0


def _restore_replica(folder: str, db: str, to_time: str | None) -> int:
    from .store import DatabaseInUse, restore_replica

    try:
        to_ms = None if to_time is None else _moment_ms(to_time)
        restored = restore_replica(folder, db, to_ms)
    except (OSError, ValueError, DatabaseInUse) as exc:
        print(f"queueapp: cannot restore: {exc}", file=sys.stderr)
        return 1
    last = "-" if restored.last_commit_ms is None else to_iso(restored.last_commit_ms)
    print(f"{db}: restored from generation {restored.generation}, {restored.commits} commits, the last at {last}")
    return 0


def _moment_ms(text: str) -> int:
    """A time given on the command line: ISO 8601 with an offset, or ms since the epoch."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--to-time {text!r} is neither ISO 8601 nor milliseconds since the epoch") from None
    if moment.tzinfo is None:
        raise ValueError(f"--to-time {text!r} needs an offset, such as Z or +01:00")
    return int(moment.timestamp() * 1000)


def _copy(source: str, target: str) -> int:
    import asyncio

    from .store import DatabaseInUse, postgres_url

    try:
        if postgres_url(target) is None:
            raise ValueError(f"--to must be a postgresql:// URL, not {target!r}")
        from .store.postgres.copy import copy

        copied = asyncio.run(copy(Path(source), target))
    except (OSError, ValueError, DatabaseInUse) as exc:
        print(f"queueapp: cannot copy: {exc}", file=sys.stderr)
        return 1
    print(", ".join(f"{table} {n}" for table, n in copied.items()))
    return 0


def _openapi(auth: bool) -> int:
    """The description clients are typed from (clients/typescript/client), without a
    running appliance."""
    from .api import endpoints
    from .api.spec import openapi_document

    print(json.dumps(openapi_document(endpoints(), auth), indent=2, sort_keys=True))
    return 0


def _worker(args: argparse.Namespace) -> int:
    import asyncio

    from .client import QueueClient, RemoteWorker, WorkerRefused
    from .worker_spans import export_from_environment
    from .workers.registry import registry

    sys.path.insert(0, os.getcwd())  # handler modules beside the command, as with python -m
    try:
        registry.load_modules([m.strip() for m in args.handlers.split(",") if m.strip()])
    except ImportError as exc:
        print(f"queueapp: cannot import a handler module: {exc}", file=sys.stderr)
        return 2

    async def run(stop: asyncio.Event) -> None:
        token = args.token or os.environ.get("QUEUEAPP_TOKEN")
        async with QueueClient(args.url, token=token, queue=args.queue, cacert=args.cacert) as client:
            worker = RemoteWorker(client, registry, concurrency=args.concurrency,
                                  lease_ms=args.lease_ms, grace_s=args.grace_ms / 1000, name=args.name)
            await worker.run(stop)

    flush = export_from_environment()
    try:
        asyncio.run(_until_stopped(run))
    except WorkerRefused as exc:
        print(f"queueapp: {exc}", file=sys.stderr)
        return 1
    finally:
        if flush is not None:
            flush()  # the spans of the last jobs
    return 0


async def _until_stopped(main: Callable[[Event], Awaitable[None]]) -> None:
    """``main(stop)``, with SIGTERM and SIGINT setting ``stop`` (a clean end)."""
    import asyncio

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await main(stop)


def _check(db: str) -> int:
    from .store import DatabaseInUse, check_database

    try:
        count, problems = check_database(db)
    except (OSError, ValueError, DatabaseInUse) as exc:
        print(f"queueapp: cannot check: {exc}", file=sys.stderr)
        return 1
    for problem in problems:
        print(problem)
    print(f"{db}: {count} jobs, {len(problems)} problem(s)")
    return 1 if problems else 0


def _migrate(db: str) -> int:
    from .store import DatabaseInUse, migrate_database

    try:
        names = ", ".join(migrate_database(db)) or "none (up to date)"
    except (DatabaseInUse, OSError, ValueError) as exc:
        print(f"queueapp: {exc}", file=sys.stderr)
        return 1
    log.info("migrations applied", extra={"event": "db.migrated", "db": db, "applied": names})
    return 0


def tune_interpreter() -> None:
    """Interpreter settings the appliance's throughput depends on (scripts/bench
    applies them to what it measures in-process too).

    - The store's writer thread needs the GIL back after each fsync while the event
      loop is busy; at the default 5 ms switch interval it waits that long per
      commit, and enqueue throughput falls by a third.
    - Every job allocates a few dozen container objects; at the default threshold
      (700) the cyclic collector ran every few jobs and took a fifth of in-process
      processing time. Collecting every 50,000 allocations measured 20 % more jobs/s;
      the appliance makes few reference cycles, so memory does not grow for it."""
    sys.setswitchinterval(0.0005)
    gc.set_threshold(50_000, 20, 20)


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
    """Take the port, then the database's lock, then start: a port in use or a second
    appliance on the same file is refused in one line before anything is read,
    created or changed."""
    from aiohttp import web

    from .app import make_app
    from .store import DatabaseInUse, lock_database
    from .tls import ServerTls

    try:
        sock = _listen(config.host, config.port)
    except OSError as exc:
        print(f"queueapp: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        lock = lock_database(config.db, config.clustered)
    except (DatabaseInUse, OSError) as exc:
        sock.close()
        print(f"queueapp: {exc}", file=sys.stderr)
        return 1
    sys.path.insert(0, os.getcwd())  # --handlers mod finds mod.py in the current folder
    try:
        app = make_app(config, lock=lock)
    except ImportError as exc:
        lock.release()
        print(f"queueapp: cannot import a handler module: {exc}", file=sys.stderr)
        return 2
    tls = None
    if config.tls_cert:
        try:
            tls = ServerTls(config.tls_cert, config.tls_key)
        except (OSError, ssl.SSLError) as exc:
            lock.release()
            sock.close()
            print(f"queueapp: cannot use tls_cert/tls_key: {exc}", file=sys.stderr)
            return 1
    raise_open_files_limit()
    tune_interpreter()
    log.info(
        "listening", extra={"event": "server.listening", "host": config.host, "port": config.port}
    )
    loop = _new_loop(config.event_loop)
    if tls is not None:
        loop.add_signal_handler(signal.SIGHUP, tls.reload)
    try:
        web.run_app(app, sock=sock, print=None, access_log=None, shutdown_timeout=1.0,
                    keepalive_timeout=config.idle_timeout_ms / 1000, loop=loop,
                    ssl_context=None if tls is None else tls.context,
                    # A search's query string holds up to 500 + 1,000 characters, each up to 12 bytes escaped.
                    max_line_size=32_768)
    except Exception as exc:  # a failed start: one line, a non-zero exit, no hang
        log.exception("start-up failed", extra={"event": "app.failed"})
        print(f"queueapp: start-up failed: {exc}", file=sys.stderr)
        return 1
    finally:
        lock.release()
    return 0


def _listen(host: str, port: int):  # noqa: ANN202 - a bound, listening socket
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def raise_open_files_limit() -> None:
    """Each connection is a file descriptor; the soft limit (often 1,024) refuses the
    1,025th client. Raise it to the hard limit this process is allowed."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1_048_576
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


if __name__ == "__main__":
    sys.exit(main())
