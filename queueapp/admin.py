"""``queueapp queues|jobs|failures|running|groups|nodes|schedules|enqueue|stats|keys``:
operate a running appliance over its HTTP API from a shell.

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
import time
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import aiohttp

from .client import QueueApiError, QueueClient
from .settings import secret_from_file
from .version import __version__

DONE, REFUSED, USAGE, UNREACHABLE = 0, 1, 2, 3
COMMANDS = ("queues", "jobs", "failures", "running", "groups", "nodes", "audit", "schedules", "enqueue", "stats",
            "keys")
ROLES = ("enqueue", "work", "read", "admin")
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
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument("--url", default=os.environ.get("QUEUEAPP_URL", "http://127.0.0.1:3000"),
                            help="the appliance (env QUEUEAPP_URL)")
    connection.add_argument("--token-file", metavar="FILE",
                            help="read the bearer token or API key from FILE (or env QUEUEAPP_TOKEN)")
    connection.add_argument("--cacert", metavar="FILE", help="CA certificate(s) for an https:// appliance")
    connection.add_argument("-o", "--output", choices=("table", "json"), default="table")
    common = argparse.ArgumentParser(add_help=False, parents=[connection])
    common.add_argument("--queue", default=None, help="the queue (default: default; audit: every queue)")

    queues = commands.add_parser("queues", parents=[common], help="list queues, pause or resume one")
    queues.add_argument("action", nargs="?", choices=("ls", "pause", "resume"), default="ls")
    queues.add_argument("name", nargs="?", help="the queue to pause or resume")

    jobs = commands.add_parser("jobs", parents=[common],
                               help="list, show, retry, cancel, promote, delete or purge jobs")
    jobs.add_argument("action", choices=tuple(JOB_FLAGS))
    jobs.add_argument("ids", nargs="*", help="job ids (show, retry, cancel, promote, delete)")
    jobs.add_argument("--failed", action="store_true", help="retry: every failed job (with --name, of that name)")
    jobs.add_argument("--state", help="ls: only this state; purge: completed, failed, cancelled or expired")
    jobs.add_argument("--name", help="ls, retry --failed: only jobs of this name")
    jobs.add_argument("--search", help='ls: a job id, a jobId key, data.field = VALUE or data.field contains "text"')
    jobs.add_argument("--limit", type=int, default=None, help="ls: at most this many, 1 to 1000 (default 50)")
    jobs.add_argument("--cursor", help="ls: go on from this nextCursor")
    jobs.add_argument("--all", action="store_true", help="ls: every page (and with --queue '*', every queue)")
    jobs.add_argument("--older-than", type=duration_ms, default=None, help="purge: finished longer ago than this")
    jobs.add_argument("--dry-run", action="store_true", help="purge, retry --failed: count, change nothing")

    failures = commands.add_parser("failures", parents=[common],
                                   help="failed jobs grouped by their error's fingerprint; retry or delete a group")
    failures.add_argument("action", nargs="?", choices=("ls", "retry", "delete"), default="ls")
    failures.add_argument("group", nargs="?", help="retry, delete: the group (errorGroup, from failures ls)")
    failures.add_argument("--dry-run", action="store_true", help="retry, delete: count, change nothing")

    commands.add_parser("running", parents=[common], help="the queue's running jobs, from memory")
    commands.add_parser("nodes", parents=[common], help="the nodes of a cluster (one: this appliance)")
    audit = commands.add_parser("audit", parents=[common],
                                help="the audit trail: operator changes, newest first (--queue: of one queue)")
    audit.add_argument("--limit", type=int, default=50, help="at most this many, 1 to 1000 (default 50)")

    groups = commands.add_parser("groups", parents=[common], help="flow-control keys: list, show, pause, resume, set")
    groups.add_argument("action", nargs="?", choices=("ls", "show", "pause", "resume", "set"), default="ls")
    groups.add_argument("key", nargs="?", help="the group key (show, pause, resume, set)")
    groups.add_argument("--for", dest="duration", type=duration_ms,
                        help="pause: for this long (default: until resumed)")
    groups.add_argument("--concurrency", type=int, help="set: the key's jobs running at once")
    groups.add_argument("--rate", help="set: starts per period, such as 20/1m")

    schedules = commands.add_parser("schedules", parents=[common],
                                    help="list, show, pause, resume, run now or remove schedules")
    schedules.add_argument("action", choices=("ls", "show", "pause", "resume", "run", "rm"))
    schedules.add_argument("name", nargs="?")

    enqueue = commands.add_parser("enqueue", parents=[common], help="add a job")
    enqueue.add_argument("name")
    enqueue.add_argument("--data", default="{}", help="the job's data, a JSON object")
    enqueue.add_argument("--priority", type=int, choices=range(1, 6), metavar="1..5")
    enqueue.add_argument("--delay", type=duration_ms, help="run after this long (30s, 5m, ...)")

    keys = commands.add_parser("keys", parents=[connection],
                               help="API keys for services: create, ls, show, rotate, revoke (needs the token)")
    keys.add_argument("action", choices=("create", "ls", "show", "rotate", "revoke"))
    keys.add_argument("key", nargs="?", help="create: the key's name; show, rotate, revoke: its id")
    keys.add_argument("--role", dest="roles", action="append", choices=ROLES,
                      help="create: a role it has (repeat for several)")
    keys.add_argument("--queue", dest="key_queues", action="append", metavar="QUEUE",
                      help="create: a queue it may touch (repeat for several; '*': every queue)")
    keys.add_argument("--expires", type=duration_ms, help="create: stop working after this long (90d, ...)")
    keys.add_argument("--note", default="", help="create: a note for people")
    keys.add_argument("--grace", type=duration_ms, default=0,
                      help="rotate: how long the secret before keeps working (default: it stops now)")
    keys.set_defaults(queue=None)

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
        async with QueueClient(args.url, token=token, queue=args.queue or "default", cacert=args.cacert, timeout_s=30,
                               coalesce=False, user_agent=f"queueapp-cli/{__version__}") as client:
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


# The options each jobs action takes; any other given is a usage error, not ignored.
JOB_FLAGS: dict[str, frozenset[str]] = {
    "ls": frozenset({"state", "name", "search", "limit", "cursor", "all"}),
    "show": frozenset(), "cancel": frozenset(), "promote": frozenset(), "delete": frozenset(),
    "retry": frozenset({"failed", "name", "dry_run"}),
    "purge": frozenset({"state", "older_than", "dry_run"}),
}
_FLAG_DEFAULTS = {"failed": False, "state": None, "name": None, "search": None, "limit": None, "cursor": None,
                  "all": False, "older_than": None, "dry_run": False}


async def jobs_action(client: QueueClient, args: argparse.Namespace) -> Any:
    given = {flag for flag, default in _FLAG_DEFAULTS.items() if getattr(args, flag) != default}
    if extra := sorted(given - JOB_FLAGS[args.action]):
        names = ", ".join("--" + flag.replace("_", "-") for flag in extra)
        raise UsageError(f"jobs {args.action} takes no {names}")
    if args.action == "ls":
        return await _list_jobs(client, args)
    if args.action == "purge":
        return await _purge(client, args)
    if args.action == "retry" and args.failed:
        return await _act_on_all(client, "retry", {"state": "failed", **({"name": args.name} if args.name else {})},
                                 args.dry_run)
    if args.action == "retry" and (args.name or args.dry_run):
        raise UsageError("jobs retry takes --name and --dry-run only with --failed")
    if not args.ids:
        raise UsageError(f"jobs {args.action} needs job ids")
    if bad := [i for i in args.ids if not (i.isascii() and i.isdigit() and len(i) <= 15)]:
        raise UsageError(f"job ids are numbers, not {', '.join(map(repr, bad))}")
    if args.action == "delete":
        answer = await client.request("POST", "/queues/jobs/actions", {"action": "delete", "ids": args.ids})
        return {"deleted": answer["changed"], "ids": answer["ids"]}
    method, suffix = {"show": ("GET", ""), "retry": ("POST", "/retry"), "cancel": ("DELETE", ""),
                      "promote": ("POST", "/promote")}[args.action]
    answers = [await client.request(method, f"/queues/jobs/{job_id}{suffix}") for job_id in args.ids]
    return answers[0] if args.action == "show" and len(answers) == 1 else [_job_row(j) for j in answers]


async def _list_jobs(client: QueueClient, args: argparse.Namespace) -> Any:
    """A page of the queue's jobs; with --all every page, and with --queue '*' of every queue."""
    limit = 50 if args.limit is None else args.limit
    if not 1 <= limit <= 1000:
        raise UsageError("--limit is 1 to 1000")
    query = {k: v for k, v in (("state", args.state), ("name", args.name), ("q", args.search)) if v}
    queues = [args.queue or "default"]
    if args.queue == "*":
        if not args.all:
            raise UsageError("--queue '*' (every queue) goes with --all")
        queues = [q["name"] for q in (await client.request("GET", "/queues"))["queues"]]
    if not args.all:
        page = await client.request("GET", "/queues/jobs", query={**query, "limit": str(limit),
                                                                   **({"cursor": args.cursor} if args.cursor else {})})
        rows = [_job_row(j) for j in page["jobs"]]
        if page["nextCursor"] and args.output == "table":
            print(f"(more: --cursor {page['nextCursor']}, or --all)", file=sys.stderr)
        return rows
    rows = []
    for queue in queues:
        client.queue = queue
        rows += [{"queue": queue, **_job_row(job)} async for job in _every_job(client, query, args.cursor)]
    return rows


async def _purge(client: QueueClient, args: argparse.Namespace) -> Any:
    if args.state not in ("completed", "failed", "cancelled", "expired") or args.older_than is None:
        raise UsageError("jobs purge needs --state completed|failed|cancelled|expired and --older-than (such as 7d)")
    if args.dry_run:
        horizon = int(time.time() * 1000) - args.older_than
        counted = await _act_on_all(client, "delete", {"state": args.state, "to": str(horizon)}, True)
        return {"wouldRemove": counted["wouldChange"], "dryRun": True}
    return await client.request("POST", "/queues/clean", {"grace": args.older_than, "status": args.state})


async def _act_on_all(client: QueueClient, action: str, filters: dict[str, str], dry_run: bool) -> dict[str, Any]:
    """``action`` on every job ``filters`` choose, by POST /queues/jobs/actions: 1,000
    a call in one transaction each (a job that moved meanwhile is left alone); with
    ``dry_run`` how many it would change."""
    if dry_run:
        answer = await client.request("POST", "/queues/jobs/actions", {"action": action, "dryRun": True},
                                      query=filters)
        return {"wouldChange": answer["matched"], "dryRun": True}
    changed, cursor = 0, None
    while True:
        body = {"action": action, **({"cursor": cursor} if cursor else {})}
        answer = await client.request("POST", "/queues/jobs/actions", body, query=filters)
        changed += answer["changed"]
        cursor = answer["nextCursor"]
        if cursor is None:
            return {PAST[action]: changed}


PAST = {"retry": "retried", "delete": "deleted", "cancel": "cancelled", "promote": "promoted"}


async def _every_job(client: QueueClient, query: dict[str, str],
                     cursor: str | None = None) -> AsyncIterator[dict[str, Any]]:
    """Every job of the queue that ``query`` selects, a page of 1,000 at a time."""
    while True:
        page = await client.request("GET", "/queues/jobs",
                                    query={**query, "limit": "1000", **({"cursor": cursor} if cursor else {})})
        for job in page["jobs"]:
            yield job
        cursor = page["nextCursor"]
        if cursor is None:
            return


async def failures_action(client: QueueClient, args: argparse.Namespace) -> Any:
    if args.action == "ls":
        if args.group or args.dry_run:
            raise UsageError("failures ls takes no group and no --dry-run")
        groups = (await client.request("GET", "/queues/jobs/failed/groups"))["groups"]
        return [{"group": g["errorGroup"], "count": g["count"], "fingerprint": g["fingerprint"],
                 "names": ", ".join(g["names"]), "lastSeen": g["lastSeen"]} for g in groups]
    if not args.group or not re.fullmatch(r"[0-9a-f]{16}", args.group):
        raise UsageError(f"failures {args.action} needs a group: 16 hex digits, as failures ls shows")
    return await _act_on_all(client, args.action, {"state": "failed", "errorGroup": args.group}, args.dry_run)


async def running_action(client: QueueClient, args: argparse.Namespace) -> Any:
    jobs = (await client.request("GET", "/queues/jobs/running"))["jobs"]
    return [{k: job.get(k) for k in ("id", "name", "startedAt", "heartbeatAt", "leaseExpiresAt", "inProcess",
                                     "stuck", "node")} for job in jobs]


async def audit_action(client: QueueClient, args: argparse.Namespace) -> Any:
    if not 1 <= args.limit <= 1000:
        raise UsageError("--limit is 1 to 1000")
    every = args.queue is None  # every queue's, unless --queue names one
    entries = (await client.request("GET", "/queues/audit", query={"limit": str(args.limit)},
                                    queued=not every))["entries"]
    return [{k: e[k] for k in ("at", "actor", "via", "address", "queue", "action", "target", "changed")}
            for e in entries]


async def nodes_action(client: QueueClient, args: argparse.Namespace) -> Any:
    """The nodes of a cluster, the leader marked; one appliance alone says so."""
    answer = await client.request("GET", "/queues/nodes")
    if not answer["cluster"]:
        return {"cluster": False, "nodes": "one appliance, not a cluster"}
    return answer["nodes"]


_RATE = re.compile(r"^(\d+)/(\d+(?:ms|s|m|h|d))$")


async def groups_action(client: QueueClient, args: argparse.Namespace) -> Any:
    if args.action == "ls":
        view = await client.request("GET", "/queues/groups", query={"limit": "500"})
        return [{"key": k["key"], "waiting": k["waiting"], "active": k["active"],
                 "concurrency": k["limits"].get("concurrency"), "rate": _rate_text(k["limits"].get("rate")),
                 "paused": k["paused"], "custom": k["custom"]} for k in view["keys"]]
    if not args.key:
        raise UsageError(f"groups {args.action} needs a key")
    path = f"/queues/groups/{quote(args.key, safe='')}"
    if args.action == "show":
        return await client.request("GET", path)
    if args.action == "pause":
        return await client.request("POST", f"{path}/pause",
                                    None if args.duration is None else {"durationMs": args.duration})
    if args.action == "resume":
        return await client.request("POST", f"{path}/resume")
    rate = None
    if args.rate is not None:
        match = _RATE.match(args.rate.strip())
        if not match:
            raise UsageError("--rate is starts per period, such as 20/1m or 5/500ms")
        rate = {"max": int(match[1]), "perMs": duration_ms(match[2])}
    if args.concurrency is None and rate is None:
        raise UsageError("groups set needs --concurrency or --rate")
    return await client.request("PUT", path, {"concurrency": args.concurrency, "rate": rate})


def _rate_text(rate: dict[str, int] | None) -> str | None:
    """``{"max": 20, "perMs": 60000}`` as ``20 per 1m``."""
    if not rate:
        return None
    per = rate["perMs"]
    for unit in ("d", "h", "m", "s"):
        if per % _UNIT_MS[unit] == 0:
            return f"{rate['max']} per {per // _UNIT_MS[unit]}{unit}"
    return f"{rate['max']} per {per}ms"


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


async def keys_action(client: QueueClient, args: argparse.Namespace) -> Any:
    if args.action == "ls":
        keys = (await client.request("GET", "/queues/keys", queued=False))["keys"]
        if args.output == "json":
            return keys
        return [{"id": k["id"], "name": k["name"], "roles": ",".join(k["roles"]), "queues": ",".join(k["queues"]),
                 "state": k["state"], "expiresAt": k["expiresAt"], "createdBy": k["createdBy"]} for k in keys]
    if not args.key:
        raise UsageError(f"keys {args.action} needs the key's {'name' if args.action == 'create' else 'id'}")
    if args.action == "create":
        if not args.roles or not args.key_queues:
            raise UsageError("keys create needs --role and --queue (each may repeat; --queue '*': every queue)")
        body: dict[str, Any] = {"name": args.key, "roles": args.roles, "queues": args.key_queues, "note": args.note}
        if args.expires is not None:
            expires = time.time() + args.expires / 1000
            body["expiresAt"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
        return _with_secret(await client.request("POST", "/queues/keys", body, queued=False), args.output)
    path = f"/queues/keys/{quote(args.key, safe='')}"
    if args.action == "show":
        return await client.request("GET", path, queued=False)
    if args.action == "rotate":
        rotated = await client.request("POST", f"{path}/rotate", {"graceSeconds": args.grace // 1000}, queued=False)
        return _with_secret(rotated, args.output)
    return await client.request("DELETE", path, queued=False)


def _with_secret(key: dict[str, Any], output: str) -> dict[str, Any]:
    """A key as made or rotated: its secret first, said to be shown this once."""
    if output == "json":
        return key
    print(f"The secret, shown once (the appliance keeps only its hash):\n\n  {key['secret']}\n")
    return {k: v for k, v in key.items() if k != "secret"}


ACTIONS: dict[str, Callable[[QueueClient, argparse.Namespace], Awaitable[Any]]] = {
    "queues": queues_action, "jobs": jobs_action, "failures": failures_action, "running": running_action,
    "groups": groups_action, "nodes": nodes_action, "audit": audit_action, "schedules": schedules_action,
    "enqueue": enqueue_action, "stats": stats_action, "keys": keys_action,
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
    if not isinstance(result, list):  # one object: a field a line, in words
        for key, value in result.items():
            if isinstance(value, dict | list):
                shown = terminal_safe(json.dumps(value))
            else:
                shown = "-" if value is None else ("yes" if value else "no") if isinstance(value, bool) \
                    else terminal_safe(str(value))
            print(f"{terminal_safe(_header(str(key)).lower()):>16}  {shown}")
        return
    columns = list(rows[0])
    headers = [_header(c) for c in columns]
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _header(column: str) -> str:
    """``attemptsMade`` as ``ATTEMPTS MADE``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", column).upper()


_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) and _ISO.match(value):
        return _relative(value)
    text = terminal_safe(str(value))
    return text if len(text) <= 60 else text[:57] + "..."


def _relative(iso: str, now: float | None = None) -> str:
    """A time as how long ago (or in how long) it is: ``3m ago``, ``in 2h``."""
    from datetime import datetime

    at = datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    delta = (time.time() if now is None else now) - at
    seconds = abs(delta)
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")):
        if seconds >= size:
            amount = f"{int(seconds // size)}{unit}"
            break
    else:
        return "now"
    return f"{amount} ago" if delta >= 0 else f"in {amount}"


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
