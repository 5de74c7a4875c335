"""Builds the aiohttp application and starts and stops the appliance's parts in order.

Each app has its own handler registry and its own service: two apps in one process
share nothing but the handler modules they import."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from .api import add_routes
from .api.audit import audit_middleware
from .api.auth import Authority, Tokens, auth_middleware
from .api.errors import error_middleware
from .api.hosts import allowed_hosts_middleware
from .api.keys import CONFIG, SERVICE
from .api.ratelimit import rate_limit_middleware
from .api.rules import rules_middleware
from .background.monitor import Alerter
from .clock import Clock
from .config import Config
from .dashboard import add_dashboard
from .jsonfast import LIBRARY as JSON_LIBRARY
from .logs import name_node
from .networks import AllowedHosts, parse_allowed_hosts
from .redact import register_secret
from .service import QueueService
from .store import DatabaseLock, StandbyGate, open_store
from .telemetry import NO_TRACING, Tracing
from .workers.builtin import BuiltinJobs
from .workers.registry import HandlerRegistry

log = logging.getLogger("queueapp.app")

BUILTINS = web.AppKey("builtins", BuiltinJobs)


def make_app(
    config: Config,
    *,
    registry: HandlerRegistry | None = None,
    clock: Clock | None = None,
    lock: DatabaseLock | None = None,
) -> web.Application:
    registry = registry if registry is not None else HandlerRegistry()
    registry.load_modules(config.handler_modules)
    for secret in config.secrets():
        register_secret(secret)
    queues = config.per_queue()
    service = QueueService(
        open_store(config.db, config.durability, lock=lock, cluster=config.clustered,
                   replicate_to=config.replicate_to, replication=config.replication,
                   standbys=StandbyGate(config.sync_standbys, config.standby_timeout_ms, config.standby_lost)),
        registry=registry,
        clock=clock,
        concurrency=queues.concurrency_for,
        lease_ms=config.lease_ms,
        thresholds_for=queues.thresholds_for,
        group_limits=queues.group_limits_for,
        aging=queues.aging_for,
        alerter=Alerter(config.alert_webhook_url) if config.alert_webhook_url else None,
        monitor_interval_ms=config.monitor_interval_ms,
        audit_kept_ms=config.audit_retention_days * 86_400_000,
        tracing=_tracing(config),
    )
    tokens = Tokens(config.token, config.read_token) if config.token else None
    authority = Authority(tokens, service.keys, config.trusted_proxies, config.login_attempts_per_minute)
    hosts = AllowedHosts(config.host, parse_allowed_hosts(config.allowed_hosts))
    middlewares = [allowed_hosts_middleware(hosts), auth_middleware(authority), error_middleware]
    if tokens is not None:  # without a token every caller may do everything: no rule to check
        middlewares.append(rules_middleware())
    middlewares.append(audit_middleware)
    if config.rate_limit:
        middlewares.append(rate_limit_middleware(
            config.rate_limit, config.rate_burst or config.rate_limit, config.trusted_proxies))
    app = web.Application(middlewares=middlewares, client_max_size=config.max_body_bytes)
    app[CONFIG] = config
    app[SERVICE] = service
    builtins = BuiltinJobs(service.store, service.clock, config.builtin_settings())
    builtins.register(registry, config.builtin_job_names)
    app[BUILTINS] = builtins
    add_routes(app, auth=bool(config.token))
    add_dashboard(app, authority)
    app.cleanup_ctx.append(_service_ctx)
    app.cleanup_ctx.append(_audit_ctx)
    app.on_shutdown.append(_end_open_requests)
    if service.node is not None:
        app.on_response_prepare.append(_name_node)
    return app


def _tracing(config: Config) -> Tracing:
    """Spans sent over OTLP/HTTP when an endpoint is set; else none (the SDK is then
    never imported)."""
    endpoint = config.traces_endpoint()
    if endpoint is None:
        return NO_TRACING
    from .telemetry_otel import OtelTracing

    return OtelTracing(endpoint or None)


async def _name_node(request: web.Request, response: web.StreamResponse) -> None:
    """Behind a load balancer, every answer of a node of a cluster says which node gave it."""
    response.headers["X-Queueapp-Node"] = request.app[SERVICE].node or ""


async def _end_open_requests(app: web.Application) -> None:
    """The first step of a stop, once the port is closed: event streams end and long
    polls return empty, so that no open request holds the stop up."""
    app[SERVICE].stop_serving_requests()


async def _service_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the store, recover, dispatch; on shutdown drain and close in reverse."""
    service = app[SERVICE]
    config = app[CONFIG]
    name_node(service.node)
    await service.start()
    log.info(
        "appliance started",
        extra={"event": "app.started", "db": config.db, "durability": config.durability,
               "handlers": ",".join(service.registry.names()) or "-", "json": JSON_LIBRARY,
               "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0]},
    )
    yield
    await service.stop(config.shutdown_grace_ms / 1000)
    await app[BUILTINS].close()
    stats = service.store.commit_stats
    log.info(
        "appliance stopped",
        extra={"event": "app.stopped", "commits": stats.commits, "changes": stats.ops,
               "mean_commit_ms": round(stats.total_commit_ms / max(stats.commits, 1), 3)},
    )


async def _audit_ctx(app: web.Application) -> AsyncIterator[None]:
    interval_ms = app[CONFIG].audit_interval_ms
    task = asyncio.create_task(_audit_forever(app[SERVICE], interval_ms)) if interval_ms else None
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _audit_forever(service: QueueService, interval_ms: int) -> None:
    """The running self-audit: every difference between memory and the table is a bug,
    logged loudly."""
    while True:
        await asyncio.sleep(interval_ms / 1000)
        try:
            problems = await service.audit()
        except Exception:
            log.exception("self-audit could not run", extra={"event": "audit.error"})
            continue
        for problem in problems:
            log.error("memory and table disagree", extra={"event": "audit.difference", "problem": problem})
