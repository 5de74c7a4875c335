"""Every setting, with its default and help text, validated once at start-up.

A setting is taken from, in order: the command line, the environment
(``QUEUEAPP_<NAME>``), the config file (TOML, ``--config``), the default.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .health import HealthThresholds
from .workers.builtin import BUILTIN_JOBS, BuiltinSettings
from .workers.email import SmtpSettings


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    kind: type = str

    @property
    def env(self) -> str:
        return "QUEUEAPP_" + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("db", "./queueapp.db", "Path of the SQLite database file (created if missing)."),
    Setting("host", "127.0.0.1", "Address to listen on. Use 0.0.0.0 to serve other hosts."),
    Setting("port", 3000, "TCP port to listen on.", int),
    Setting(
        "durability", "full",
        "full: fsync every commit, an acknowledged job survives power loss. "
        "normal: survives a crash of the process, not of the machine; faster.",
    ),
    Setting("token", "", "Bearer token every request must carry (except GET /livez). Empty: no auth."),
    Setting(
        "handlers", "",
        "Comma-separated Python modules to import at start; their @registry.handler "
        "functions run jobs of those names inside the appliance.",
    ),
    Setting("concurrency", 5, "In-process jobs run at once per queue.", int),
    Setting("lease_ms", 30_000, "Default lease of a job given to an external worker, in ms.", int),
    Setting(
        "long_poll_max_ms", 30_000,
        "The longest a lease long poll waits (a request's waitMs beyond it is cut to it). Lower it"
        " below a proxy's idle timeout.", int,
    ),
    Setting("max_body_bytes", 1_048_576, "Largest request body accepted, in bytes (413 above).", int),
    Setting(
        "rate_limit", 0,
        "Enqueue requests per second allowed per client address (429 beyond). 0: no limit.", int,
    ),
    Setting(
        "rate_burst", 0,
        "Enqueue requests a client may send at once before rate_limit applies. 0: same as rate_limit.", int,
    ),
    Setting(
        "trusted_proxies", "",
        "Reverse proxies (addresses or CIDR networks, comma-separated) whose X-Forwarded-For is"
        " believed: the rate limit then counts the client behind them. Empty: the peer address counts.",
    ),
    Setting("shutdown_grace_ms", 10_000, "On stop, how long running jobs may take to finish, in ms.", int),
    Setting("idle_timeout_ms", 15_000, "An idle keep-alive connection is closed after this long, in ms.", int),
    Setting(
        "audit_interval_ms", 0,
        "Self-audit: every this many ms, compare memory with the table and log any difference;"
        " also serves GET /debug/audit. 0: off (a debugging aid; each audit reads every unfinished job).",
        int,
    ),
    Setting("monitor_interval_ms", 60_000, "How often the monitor checks every queue's health, in ms.", int),
    Setting(
        "alert_webhook_url", "",
        "URL that receives a JSON POST (with a Slack-compatible text field) when a queue's "
        "health changes or stays critical. Empty: alerts go to the log only.",
    ),
    Setting("stuck_after_ms", 300_000, "An active job without a heartbeat for this long is stuck.", int),
    Setting("health_failure_rate_warning", 0.10, "Failure rate over 5 minutes above which health is warning.", float),
    Setting("health_failure_rate_critical", 0.20, "Failure rate over 5 minutes above which health is critical.", float),
    Setting("health_waiting_warning", 1000, "Waiting jobs above which health is warning.", int),
    Setting("health_waiting_critical", 5000, "Waiting jobs above which health is critical.", int),
    Setting("health_active_warning", 100, "Active jobs above which health is warning.", int),
    Setting("health_delayed_warning", 500, "Delayed jobs above which health is warning.", int),
    Setting(
        "builtin_jobs", "auto",
        "Built-in job types the appliance runs itself, comma-separated, or auto: http, "
        "backup-data and generate-report always, send-email when smtp_host is set, "
        "process-payment when payment_url is set. A type not run here waits for an external "
        "worker like any other job name.",
    ),
    Setting(
        "http_allowed_hosts", "",
        "Host names and networks (CIDR), comma-separated, that http jobs may call although they"
        " are not public (loopback, private, link-local). Empty: http jobs reach public addresses only.",
    ),
    Setting("smtp_host", "", "SMTP server for send-email jobs. Empty: send-email jobs fail, saying so."),
    Setting("smtp_port", 587, "SMTP port.", int),
    Setting("smtp_security", "starttls", "none, starttls or tls (implicit TLS, usually port 465)."),
    Setting("smtp_user", "", "SMTP user name (empty: no login)."),
    Setting("smtp_password", "", "SMTP password."),
    Setting("smtp_from", "queueapp@localhost", "Sender of send-email jobs that give no data.from."),
    Setting("payment_url", "", "Endpoint that process-payment jobs POST to. Empty: they fail, saying so."),
    Setting("payment_token", "", "Bearer token sent to payment_url."),
    Setting("backup_dir", "./backups", "Folder of backup-data jobs' copies of the database."),
    Setting("backup_keep", 7, "How many backups backup-data keeps (the newest).", int),
    Setting("report_dir", "./reports", "Folder of generate-report jobs' JSON and CSV files."),
    Setting("log_level", "info", "debug, info, warning or error."),
    Setting(
        "event_loop", "auto",
        "auto: uvloop when installed (pip install queueapp[fast]), else asyncio; or asyncio, uvloop.",
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}

CHOICES: dict[str, tuple[str, ...]] = {
    "durability": ("full", "normal"),
    "smtp_security": ("none", "starttls", "tls"),
    "event_loop": ("auto", "asyncio", "uvloop"),
    "log_level": ("debug", "info", "warning", "error"),
}
AT_LEAST: dict[str, int] = {
    "port": 1, "concurrency": 1, "lease_ms": 1, "max_body_bytes": 1, "monitor_interval_ms": 1,
    "stuck_after_ms": 1, "backup_keep": 1, "long_poll_max_ms": 0, "idle_timeout_ms": 1, "audit_interval_ms": 0,
    "rate_limit": 0, "rate_burst": 0, "shutdown_grace_ms": 0,
}


@dataclass(frozen=True)
class Config:
    db: str = "./queueapp.db"
    host: str = "127.0.0.1"
    port: int = 3000
    durability: str = "full"
    token: str = ""
    handlers: str = ""
    concurrency: int = 5
    lease_ms: int = 30_000
    long_poll_max_ms: int = 30_000
    max_body_bytes: int = 1_048_576
    rate_limit: int = 0
    rate_burst: int = 0
    trusted_proxies: str = ""
    shutdown_grace_ms: int = 10_000
    idle_timeout_ms: int = 15_000
    audit_interval_ms: int = 0
    monitor_interval_ms: int = 60_000
    alert_webhook_url: str = ""
    stuck_after_ms: int = 300_000
    health_failure_rate_warning: float = 0.10
    health_failure_rate_critical: float = 0.20
    health_waiting_warning: int = 1000
    health_waiting_critical: int = 5000
    health_active_warning: int = 100
    health_delayed_warning: int = 500
    builtin_jobs: str = "auto"
    http_allowed_hosts: str = ""
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_from: str = "queueapp@localhost"
    payment_url: str = ""
    payment_token: str = ""
    backup_dir: str = "./backups"
    backup_keep: int = 7
    report_dir: str = "./reports"
    log_level: str = "info"
    event_loop: str = "auto"
    # Per-queue overrides from the config file's [queues.NAME] tables.
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)

    def thresholds_for(self, queue: str) -> HealthThresholds:
        values = {name: getattr(self, name) for name in HEALTH_KEYS}
        values.update({k: v for k, v in self.queues.get(queue, {}).items() if k in HEALTH_KEYS})
        return HealthThresholds(
            failure_rate_warning=values["health_failure_rate_warning"],
            failure_rate_critical=values["health_failure_rate_critical"],
            waiting_warning=values["health_waiting_warning"],
            waiting_critical=values["health_waiting_critical"],
            active_warning=values["health_active_warning"],
            delayed_warning=values["health_delayed_warning"],
            stuck_after_ms=self.stuck_after_ms,
        )

    def _check_numbers(self) -> None:
        for name, low in AT_LEAST.items():
            if getattr(self, name) < low:
                raise ConfigError(f"{name} must be at least {low}")
        if self.port > 65535:
            raise ConfigError(f"port must be between 1 and 65535, not {self.port}")
        for name in ("health_failure_rate_warning", "health_failure_rate_critical"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name} must be between 0 and 1")

    @property
    def builtin_job_names(self) -> tuple[str, ...]:
        if self.builtin_jobs.strip() == "auto":
            names = ["http", "backup-data", "generate-report"]
            if self.smtp_host:
                names.append("send-email")
            if self.payment_url:
                names.append("process-payment")
            return tuple(names)
        return tuple(n.strip() for n in self.builtin_jobs.split(",") if n.strip())

    def builtin_settings(self) -> BuiltinSettings:
        smtp = None
        if self.smtp_host:
            smtp = SmtpSettings(self.smtp_host, self.smtp_port, self.smtp_security, self.smtp_user,
                                self.smtp_password, self.smtp_from)
        return BuiltinSettings(smtp, self.payment_url, self.payment_token, self.backup_dir,
                               self.backup_keep, self.report_dir, self.http_allowed_hosts)

    def concurrency_for(self, queue: str) -> int:
        return int(self.queues.get(queue, {}).get("concurrency", self.concurrency))

    @property
    def handler_modules(self) -> list[str]:
        return [m.strip() for m in self.handlers.split(",") if m.strip()]

    def validate(self) -> Config:
        """Refuse a configuration that cannot work, saying which setting and why."""
        from .api.ratelimit import parse_networks
        from .store import parse_location

        try:
            parse_location(self.db)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")
        self._check_numbers()
        for name in ("payment_url", "alert_webhook_url"):
            if getattr(self, name) and not getattr(self, name).startswith(("http://", "https://")):
                raise ConfigError(f"{name} must be an http:// or https:// URL")
        try:
            parse_networks(self.trusted_proxies)
        except ValueError as exc:
            raise ConfigError(f"trusted_proxies: {exc}") from None
        unknown = set(self.builtin_job_names) - set(BUILTIN_JOBS)
        if unknown:
            raise ConfigError(f"builtin_jobs has unknown types {sorted(unknown)}; known: {', '.join(BUILTIN_JOBS)}")
        return self


def _convert(setting: Setting, value: Any, source: str) -> Any:
    if setting.kind is float:
        if isinstance(value, bool):
            raise ConfigError(f"{setting.name} from {source} must be a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{setting.name} from {source} must be a number, not {value!r}") from None
    if setting.kind is int:
        if isinstance(value, bool):
            raise ConfigError(f"{setting.name} from {source} must be a whole number")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{setting.name} from {source} must be a whole number, not {value!r}"
            ) from None
    return str(value)


def load_config(
    overrides: dict[str, Any] | None = None,
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build the configuration from the command line ``overrides`` (None values are
    ignored), the environment, and the TOML ``config_file``."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_file = config_file or env.get("QUEUEAPP_CONFIG")
    if config_file:
        try:
            with Path(config_file).open("rb") as f:
                from_file = tomllib.load(f)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from None
        values["queues"] = _queue_tables(from_file.pop("queues", {}), config_file)
        for key, value in from_file.items():
            if key not in _BY_NAME:
                raise ConfigError(f"unknown setting {key!r} in {config_file}")
            values[key] = _convert(_BY_NAME[key], value, config_file)
    for setting in SETTINGS:
        if setting.env in env:
            values[setting.name] = _convert(setting, env[setting.env], setting.env)
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = _convert(_BY_NAME[key], value, f"--{key.replace('_', '-')}")
    assert {f.name for f in fields(Config)} == set(_BY_NAME) | {"queues"}
    return Config(**values).validate()


HEALTH_KEYS = tuple(s.name for s in SETTINGS if s.name.startswith("health_"))
QUEUE_KEYS = ("concurrency", *HEALTH_KEYS)


def _queue_tables(tables: Any, source: str) -> dict[str, dict[str, Any]]:
    """``[queues.NAME]`` tables: per-queue concurrency and health thresholds."""
    if not isinstance(tables, dict):
        raise ConfigError(f"queues in {source} must be tables like [queues.emails]")
    result = {}
    for queue, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(f"queues.{queue} in {source} must be a table")
        unknown = set(table) - set(QUEUE_KEYS)
        if unknown:
            raise ConfigError(f"unknown setting(s) {sorted(unknown)} in [queues.{queue}] of {source}")
        result[queue] = {k: _convert(_BY_NAME[k], v, f"{source} [queues.{queue}]") for k, v in table.items()}
    return result
