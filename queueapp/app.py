"""Builds the aiohttp application and starts and stops the appliance's parts in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from .api import schedules, streams  # noqa: F401 - register their routes
from .api.auth import auth_middleware
from .api.errors import error_middleware
from .api.ratelimit import rate_limit_middleware
from .api.routes import routes
from .clock import Clock
from .config import Config
from .monitor import Alerter, Monitor
from .redact import register_secret
from .service import QueueService
from .store import DatabaseLock, open_store
from .workers.builtin import BuiltinJobs
from .workers.registry import HandlerRegistry
from .workers.registry import registry as default_registry

log = logging.getLogger("queueapp.app")


def make_app(
    config: Config,
    *,
    registry: HandlerRegistry | None = None,
    clock: Clock | None = None,
    lock: DatabaseLock | None = None,
) -> web.Application:
    registry = registry or default_registry
    registry.load_modules(config.handler_modules)
    for secret in (config.token, config.smtp_password, config.payment_token):
        register_secret(secret)
    middlewares = [error_middleware]
    if config.token:
        middlewares.insert(0, auth_middleware(config.token))
    if config.rate_limit:
        middlewares.append(rate_limit_middleware(
            config.rate_limit, config.rate_burst or config.rate_limit, config.trusted_proxies))
    app = web.Application(middlewares=middlewares, client_max_size=config.max_body_bytes)
    app["config"] = config
    service = QueueService(
        open_store(config.db, config.durability, lock=lock),
        registry=registry,
        clock=clock,
        concurrency=config.concurrency_for,
        lease_ms=config.lease_ms,
    )
    app["service"] = service
    builtins = BuiltinJobs(service, config.builtin_settings())
    builtins.register(registry, config.builtin_job_names)
    app["builtins"] = builtins
    alerter = Alerter(config.alert_webhook_url) if config.alert_webhook_url else None
    app["monitor"] = Monitor(
        service.dispatcher, config.thresholds_for, alerter, config.monitor_interval_ms,
        reclaim=service.reclaim_memory,
    )
    app.add_routes(routes)
    app.cleanup_ctx.append(_service_ctx)
    app.cleanup_ctx.append(_monitor_ctx)
    app.on_shutdown.append(_end_open_requests)
    return app


async def _end_open_requests(app: web.Application) -> None:
    """The first step of a stop, once the port is closed: event streams end and long
    polls return empty, so that no open request holds the stop up."""
    service: QueueService = app["service"]
    service.dispatcher.close_leases()
    service.dispatcher.events.close_all()


async def _service_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the store, recover, dispatch; on shutdown drain and close in reverse."""
    service: QueueService = app["service"]
    config: Config = app["config"]
    await service.start()
    log.info(
        "appliance started",
        extra={"event": "app.started", "db": config.db, "durability": config.durability,
               "handlers": ",".join(service.registry.names()) or "-"},
    )
    yield
    await service.stop(config.shutdown_grace_ms / 1000)
    await app["builtins"].close()
    stats = service.store.commit_stats
    log.info(
        "appliance stopped",
        extra={"event": "app.stopped", "commits": stats.commits, "changes": stats.ops,
               "mean_commit_ms": round(stats.total_commit_ms / max(stats.commits, 1), 3)},
    )


async def _monitor_ctx(app: web.Application) -> AsyncIterator[None]:
    monitor: Monitor = app["monitor"]
    if monitor.alerter is not None:
        await monitor.alerter.start()
    task = asyncio.create_task(monitor.run(), name="queueapp-monitor")
    config: Config = app["config"]
    audit = None
    if config.audit_interval_ms:
        audit = asyncio.create_task(_audit_forever(app["service"], config.audit_interval_ms))
    yield
    await _cancel(task)
    if audit is not None:
        await _cancel(audit)
    if monitor.alerter is not None:
        await monitor.alerter.stop()


async def _audit_forever(service: QueueService, interval_ms: int) -> None:
    """The running self-audit: every difference between memory and the table is a bug,
    logged loudly."""
    while True:
        await asyncio.sleep(interval_ms / 1000)
        try:
            problems = await service.dispatcher.audit()
        except Exception:
            log.exception("self-audit could not run", extra={"event": "audit.error"})
            continue
        for problem in problems:
            log.error("memory and table disagree", extra={"event": "audit.difference", "problem": problem})


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
