"""``queueapp queues|jobs|schedules|enqueue|stats``: operate a running appliance over
its HTTP API from a shell.

Tables for people, ``-o json`` for scripts; exit codes scripts can rely on: 0 done,
1 refused or not found, 2 usage, 3 the appliance cannot be reached. Errors are one
line with the server's message. The appliance is ``--url`` (or ``QUEUEAPP_URL``,
default http://127.0.0.1:3000); the token comes from ``QUEUEAPP_TOKEN`` or
``--token-file``; ``--cacert`` verifies an HTTPS appliance.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp

from .client import QueueApiError, QueueClient
from .settings import secret_from_file

DONE, REFUSED, USAGE, UNREACHABLE = 0, 1, 2, 3
COMMANDS = ("queues", "jobs", "schedules", "enqueue", "stats")
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def duration_ms(text: str) -> int:
    """``500ms``, ``30s``, ``5m``, ``2h``, ``7d`` (argparse type)."""
    match = _DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 30s, 5m, 2h or 7d")
    return int(match[1]) * _UNIT_MS[match[2]]


def add_commands(commands: Any) -> None:
    """The admin subcommands, on the main parser's subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("QUEUEAPP_URL", "http://127.0.0.1:3000"),
                        help="the appliance (env QUEUEAPP_URL)")
    common.add_argument("--token-file", metavar="FILE", help="read the bearer token from FILE (or env QUEUEAPP_TOKEN)")
    common.add_argument("--cacert", metavar="FILE", help="CA certificate(s) for an https:// appliance")
    common.add_argument("--queue", default="default", help="the queue (default: default)")
    common.add_argument("-o", "--output", choices=("table", "json"), default="table")

    queues = commands.add_parser("queues", parents=[common], help="list queues, pause or resume one")
    queues.add_argument("action", nargs="?", choices=("ls", "pause", "resume"), default="ls")
    queues.add_argument("name", nargs="?", help="the queue to pause or resume")

    jobs = commands.add_parser("jobs", parents=[common], help="list, show, retry, cancel, promote or purge jobs")
    jobs.add_argument("action", choices=("ls", "show", "retry", "cancel", "promote", "purge"))
    jobs.add_argument("ids", nargs="*", help="job ids (show, retry, cancel, promote)")
    jobs.add_argument("--failed", action="store_true", help="retry: every failed job (with --name, of that name)")
    jobs.add_argument("--state", help="ls: only this state; purge: completed, failed, cancelled or expired")
    jobs.add_argument("--name", help="ls: only jobs of this name")
    jobs.add_argument("--search", help='ls: a job id, a jobId key, data.field = VALUE or data.field contains "text"')
    jobs.add_argument("--limit", type=int, default=50, help="ls: at most this many (default 50)")
    jobs.add_argument("--older-than", type=duration_ms, default=None, help="purge: finished longer ago than this")
    jobs.add_argument("--dry-run", action="store_true", help="purge: count, change nothing")

    schedules = commands.add_parser("schedules", parents=[common],
                                    help="list, show, pause, resume, run now or remove schedules")
    schedules.add_argument("action", choices=("ls", "show", "pause", "resume", "run", "rm"))
    schedules.add_argument("name", nargs="?")

    enqueue = commands.add_parser("enqueue", parents=[common], help="add a job")
    enqueue.add_argument("name")
    enqueue.add_argument("--data", default="{}", help="the job's data, a JSON object")
    enqueue.add_argument("--priority", type=int, choices=range(1, 6), metavar="1..5")
    enqueue.add_argument("--delay", type=duration_ms, help="run after this long (30s, 5m, ...)")

    stats = commands.add_parser("stats", parents=[common], help="a live view of every queue, until interrupted")
    stats.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    stats.add_argument("--once", action="store_true", help="print one view and exit")


def run(args: argparse.Namespace) -> int:
    try:
        token = _token(args)
    except UsageError as exc:
        print(f"queueapp: {exc}", file=sys.stderr)
        return USAGE
    try:
        return asyncio.run(_run(args, token))
    except KeyboardInterrupt:
        return DONE


async def _run(args: argparse.Namespace, token: str | None) -> int:
    action: Callable[[QueueClient, argparse.Namespace], Awaitable[Any]] = ACTIONS[args.command]
    try:
        async with QueueClient(args.url, token=token, queue=args.queue, cacert=args.cacert, timeout_s=30,
                               coalesce=False) as client:
            result = await action(client, args)
    except UsageError as exc:
        print(f"queueapp: {exc}", file=sys.stderr)
        return USAGE
    except QueueApiError as exc:
        print(f"queueapp: {exc.status} {exc.code}: {terminal_safe(exc.message)}", file=sys.stderr)
        return UNREACHABLE if exc.code == "bad_response" else REFUSED
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        print(f"queueapp: cannot reach {args.url}: {exc}", file=sys.stderr)
        return UNREACHABLE
    if result is not None:
        _print(result, args.output)
    return DONE


class UsageError(Exception):
    pass


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file:
        try:
            return secret_from_file(args.token_file)
        except ValueError as exc:
            raise UsageError(f"--token-file: {exc}") from None
    return os.environ.get("QUEUEAPP_TOKEN") or None


# -- the actions: each returns what to print (a list of rows or one object) ----------


async def queues_action(client: QueueClient, args: argparse.Namespace) -> Any:
    if args.action in ("pause", "resume"):
        if not args.name:
            raise UsageError(f"queues {args.action} needs a queue name")
        client.queue = args.name
        return await client.request("POST", f"/queues/{args.action}")
    rows = []
    for q in (await client.request("GET", "/queues"))["queues"]:
        client.queue = q["name"]
        health = await client.request_any("GET", "/queues/health")
        rows.append({"queue": q["name"], "paused": q["paused"], **q["counts"], "health": health["status"]})
    return rows


async def jobs_action(client: QueueClient, args: argparse.Namespace) -> Any:
    if args.action == "ls":
        query = {"limit": str(min(max(args.limit, 1), 1000))}
        query.update({k: v for k, v in (("state", args.state), ("name", args.name), ("q", args.search)) if v})
        page = await client.request("GET", "/queues/jobs", query=query)
        return [_job_row(j) for j in page["jobs"]]
    if args.action == "purge":
        return await _purge(client, args)
    if args.action == "retry" and args.failed:
        return await _retry_failed(client, args.name)
    if not args.ids:
        raise UsageError(f"jobs {args.action} needs job ids")
    method, suffix = {"show": ("GET", ""), "retry": ("POST", "/retry"), "cancel": ("DELETE", ""),
                      "promote": ("POST", "/promote")}[args.action]
    answers = [await client.request(method, f"/queues/jobs/{job_id}{suffix}") for job_id in args.ids]
    return answers[0] if args.action == "show" and len(answers) == 1 else [_job_row(j) for j in answers]


async def _purge(client: QueueClient, args: argparse.Namespace) -> Any:
    if args.state not in ("completed", "failed", "cancelled", "expired") or args.older_than is None:
        raise UsageError("jobs purge needs --state completed|failed|cancelled|expired and --older-than (such as 7d)")
    if args.dry_run:
        return {"wouldRemove": await _count_older(client, args.state, args.older_than), "dryRun": True}
    return await client.request("POST", "/queues/clean", {"grace": args.older_than, "status": args.state})


async def _retry_failed(client: QueueClient, name: str | None) -> Any:
    """Every failed job (of ``name``) back in line: the ids are paged first, then each
    is retried (a job that moved meanwhile is counted apart, not an error)."""
    ids = [job["id"] async for job in _every_job(client, {"state": "failed", **({"name": name} if name else {})})]
    retried = skipped = 0
    for job_id in ids:
        try:
            await client.request("POST", f"/queues/jobs/{job_id}/retry")
            retried += 1
        except QueueApiError as exc:
            if exc.status not in (404, 409):
                raise
            skipped += 1
    return {"retried": retried, "skipped": skipped}


async def _count_older(client: QueueClient, state: str, older_than_ms: int) -> int:
    """Page through the queue's jobs of ``state`` and count those finished before the horizon."""
    from datetime import UTC, datetime

    horizon = datetime.now(UTC).timestamp() * 1000 - older_than_ms
    count = 0
    async for job in _every_job(client, {"state": state}):
        finished = datetime.fromisoformat(job["finishedAt"].replace("Z", "+00:00")).timestamp() * 1000
        count += finished <= horizon
    return count


async def _every_job(client: QueueClient, query: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
    """Every job of the queue that ``query`` selects, a page of 1,000 at a time."""
    cursor = None
    while True:
        page = await client.request("GET", "/queues/jobs",
                                    query={**query, "limit": "1000", **({"cursor": cursor} if cursor else {})})
        for job in page["jobs"]:
            yield job
        cursor = page["nextCursor"]
        if cursor is None:
            return


async def schedules_action(client: QueueClient, args: argparse.Namespace) -> Any:
    if args.action == "ls":
        return [{k: s[k] for k in ("name", "jobName", "cron", "everyMs", "timezone", "enabled", "nextRunAt")}
                for s in (await client.request("GET", "/queues/schedules"))["schedules"]]
    if not args.name:
        raise UsageError(f"schedules {args.action} needs a schedule name")
    method, suffix = {"show": ("GET", ""), "pause": ("POST", "/pause"), "resume": ("POST", "/resume"),
                      "run": ("POST", "/run"), "rm": ("DELETE", "")}[args.action]
    return await client.request(method, f"/queues/schedules/{args.name}{suffix}")


async def enqueue_action(client: QueueClient, args: argparse.Namespace) -> Any:
    try:
        data = json.loads(args.data)
    except ValueError as exc:
        raise UsageError(f"--data is not JSON: {exc}") from None
    options = {k: v for k, v in (("priority", args.priority), ("delay", args.delay)) if v is not None}
    return _job_row(await client.add_job(args.name, data, options))


async def stats_action(client: QueueClient, args: argparse.Namespace) -> Any:
    while True:
        rows = []
        for q in (await client.request("GET", "/queues"))["queues"]:
            client.queue = q["name"]
            m = (await client.request_any("GET", "/queues/health"))["metrics"]
            rows.append({"queue": q["name"], "waiting": m["waiting"] + m["paused"], "active": m["active"],
                         "delayed": m["delayed"], "completed": m["completed"], "failed": m["failed"],
                         "perMinute": m["throughput"], "avgMs": m["avgProcessingTime"],
                         "paused": q["paused"]})
        if args.once or args.output == "json":
            return rows
        print("\033[2J\033[H", end="")  # clear the terminal, as top does
        _print(rows, "table")
        await asyncio.sleep(args.interval)


ACTIONS: dict[str, Callable[[QueueClient, argparse.Namespace], Awaitable[Any]]] = {
    "queues": queues_action, "jobs": jobs_action, "schedules": schedules_action,
    "enqueue": enqueue_action, "stats": stats_action,
}


def _job_row(job: dict[str, Any]) -> dict[str, Any]:
    return {k: job[k] for k in ("id", "name", "state", "priority", "attemptsMade", "runAt", "error")}


def _print(result: Any, output: str) -> None:
    if output == "json":
        print(json.dumps(result, indent=2))
        return
    rows = result if isinstance(result, list) else [result]
    if not rows:
        print("(none)")
        return
    if not isinstance(result, list):  # one object: a field a line
        for key, value in result.items():
            shown = json.dumps(value) if isinstance(value, dict | list) else terminal_safe(str(value))
            print(f"{terminal_safe(str(key)):>14}  {shown}")
        return
    columns = list(rows[0])
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    text = terminal_safe(str(value))
    return text if len(text) <= 60 else text[:57] + "..."


# Bidirectional overrides and isolates reorder what a terminal shows of a line.
_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def terminal_safe(text: str) -> str:
    """``text`` with every control character written as an escape (``\\x1b``): a job's
    name or error comes from whoever enqueued it, and raw escape sequences would
    retitle, clear or rewrite the operator's terminal."""
    if text.isprintable():
        return text
    return "".join(_escaped(c) if unicodedata.category(c) == "Cc" or c in _BIDI else c for c in text)


def _escaped(c: str) -> str:
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
