"""Every setting, declared once: its type, default, help, bounds and whether it is a
secret. The command-line options, the environment names, the TOML keys, the
validation and the README's table (checked by a test) all derive from it.

A setting is taken from, in order: the command line, the environment
(``QUEUEAPP_<NAME>``), the config file (TOML, ``--config``), the default. A secret
may also be read from a file: ``--token-file``, ``QUEUEAPP_TOKEN_FILE`` or
``token_file`` in TOML (as systemd credentials and container secrets provide them).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field, fields
from typing import Any

from .builtin_settings import BUILTIN_JOBS, BuiltinSettings, SmtpSettings
from .config_queues import HEALTH_PREFIX, QueueSettings
from .health import HealthThresholds
from .networks import parse_allowed_hosts, parse_networks
from .options import MAX_LEASE_MS, MIN_LEASE_MS
from .store import check_location, postgres_url


class ConfigError(ValueError):
    pass


def setting(
    default: Any, help: str, *, choices: tuple[str, ...] | None = None, low: float | None = None,
    high: float | None = None, secret: bool = False,
) -> Any:
    """One setting's declaration, as a dataclass field of ``Config``."""
    meta = {"help": help, "choices": choices, "low": low, "high": high, "secret": secret}
    return field(default=default, repr=not secret, metadata=meta)


@dataclass(frozen=True)
class Config:
    db: str = setting(
        "./queueapp.db",
        "Path of the SQLite database file (created if missing), or postgresql://user@host:5432/dbname.",
    )
    cluster: str = setting(
        "off",
        "on: this process is one node of several serving one PostgreSQL database (start every node "
        "with it). off: it serves its database alone.",
        choices=("off", "on"),
    )
    host: str = setting("127.0.0.1", "Address to listen on. Use 0.0.0.0 to serve other hosts.")
    port: int = setting(3000, "TCP port to listen on.", low=1, high=65535)
    durability: str = setting(
        "full",
        "full: fsync every commit, an acknowledged job survives power loss. normal: survives "
        "a crash of the process, not of the machine; faster.",
        choices=('full', 'normal'),
    )
    replicate_to: str = setting(
        "",
        "A folder (a local disk, a mounted network volume) every commit of the SQLite database "
        "is copied to as it commits: snapshots and the write-ahead log since, from which "
        "queueapp restore --from rebuilds the database as of any second kept. Empty: none.",
    )
    replication: str = setting(
        "async",
        "sync: a change is acknowledged only once replicate_to has it on its disk too. async: "
        "the copy is written at each commit and reaches its disk within a second.",
        choices=('async', 'sync'),
    )
    sync_standbys: int = setting(
        0,
        "How many standbys (queueapp standby) must hold a change on their disk before it is "
        "answered; 0: none waited for. Needs replicate_to.",
        low=0, high=8,
    )
    standby_timeout_ms: int = setting(
        5000,
        "With sync_standbys: how long a change waits for them before standby_lost applies.",
        low=100, high=600_000,
    )
    standby_lost: str = setting(
        "degrade",
        "With sync_standbys, when they did not confirm in time: degrade answers and goes on "
        "without waiting (health critical) until they have caught up; refuse answers 503 "
        "(the change is committed here, not confirmed there).",
        choices=('degrade', 'refuse'),
    )
    tls_cert: str = setting(
        "",
        "PEM certificate (chain) file: serve HTTPS. Reloaded on SIGHUP without dropping the service. "
        "Empty: plain HTTP.",
    )
    tls_key: str = setting("", "PEM private key file of tls_cert.")
    token: str = setting(
        "",
        "Bearer token every request must carry (except GET /livez). Empty: no auth.",
        secret=True,
    )
    read_token: str = setting(
        "",
        "A second token that may read everything (API and dashboard) and change nothing (403). "
        "Needs token.",
        secret=True,
    )
    login_attempts_per_minute: int = setting(
        10,
        "Failed attempts to authenticate (a wrong token or key, by bearer or the dashboard's login) "
        "a client address may make in a row, and then one each 60/N seconds; beyond that, 429 "
        "until it may try again, its credentials unread.",
        low=1, high=100_000,
    )
    callback_secret: str = setting(
        "",
        "Key of the HMAC-SHA256 signature on the POST a job with options.callbackUrl makes when it "
        "finishes. Empty: such callbacks fail, saying so.",
        secret=True,
    )
    handlers: str = setting(
        "",
        "Comma-separated Python modules to import at start; their @registry.handler functions "
        "run jobs of those names inside the appliance.",
    )
    concurrency: int = setting(5, "In-process jobs run at once per queue.", low=1, high=10000)
    aging_every_ms: int = setting(
        0,
        "Priority aging: a waiting job rises a priority level per this many ms waited (0: off).",
        low=0, high=86_400_000,
    )
    aging_max_levels: int = setting(
        2,
        "Priority aging: the most levels a waiting job rises (never above HIGH, 2).",
        low=1, high=4,
    )
    lease_ms: int = setting(
        30_000,
        "Default lease of a job given to an external worker, in ms (as a lease's leaseMs: 1000 to 86400000).",
        low=MIN_LEASE_MS, high=MAX_LEASE_MS,
    )
    long_poll_max_ms: int = setting(
        30_000,
        "The longest a lease long poll waits (a request's waitMs beyond it is cut to it). "
        "Lower it below a proxy's idle timeout.",
        low=0, high=30000,
    )
    max_body_bytes: int = setting(
        1_048_576,
        "Largest request body accepted, in bytes (413 above).",
        low=1,
    )
    rate_limit: int = setting(
        0,
        "Requests that create jobs (enqueue, bulk, scheduled job, schedule, retry) per second "
        "allowed per client address (429 beyond). 0: no limit.",
        low=0,
    )
    rate_burst: int = setting(
        0,
        "Requests that create jobs a client may send at once before rate_limit applies. 0: "
        "same as rate_limit.",
        low=0,
    )
    allowed_hosts: str = setting(
        "",
        "Host names the appliance answers to beyond localhost, address literals and its "
        "own host (comma-separated; .example.com for a domain and its names; * for any). "
        "A request for another name is refused (400): a page that re-points its own name "
        "to this host cannot use it.",
    )
    trusted_proxies: str = setting(
        "",
        "Reverse proxies (addresses or CIDR networks, comma-separated) whose X-Forwarded-For "
        "is believed: the rate limit then counts the client behind them. Empty: the peer "
        "address counts.",
    )
    shutdown_grace_ms: int = setting(
        10_000,
        "On stop, how long running jobs may take to finish, in ms.",
        low=0,
    )
    idle_timeout_ms: int = setting(
        15_000,
        "An idle keep-alive connection is closed after this long, in ms.",
        low=1,
    )
    audit_retention_days: int = setting(
        90,
        "How long the audit trail (every operator change: GET /queues/audit) keeps an entry, "
        "in days; the cleanup job prunes older ones.",
        low=1, high=36_500,
    )
    audit_interval_ms: int = setting(
        0,
        "Self-audit: every this many ms, compare memory with the table and log any "
        "difference; also serves GET /debug/audit. 0: off (a debugging aid; each audit reads "
        "every unfinished job).",
        low=0,
    )
    monitor_interval_ms: int = setting(
        60_000,
        "How often the monitor checks every queue's health, in ms.",
        low=1,
    )
    alert_webhook_url: str = setting(
        "",
        "URL that receives a JSON POST (with a Slack-compatible text field) when a queue's "
        "health changes or stays critical. Empty: alerts go to the log only.",
    )
    stuck_after_ms: int = setting(
        300_000,
        "An active job without a heartbeat for this long is stuck.",
        low=1,
    )
    health_failure_rate_warning: float = setting(
        0.10,
        "Failure rate over 5 minutes above which health is warning.",
        low=0, high=1,
    )
    health_failure_rate_critical: float = setting(
        0.20,
        "Failure rate over 5 minutes above which health is critical.",
        low=0, high=1,
    )
    health_waiting_warning: int = setting(
        1000,
        "Waiting jobs above which health is warning.",
        low=0,
    )
    health_waiting_critical: int = setting(
        5000,
        "Waiting jobs above which health is critical.",
        low=0,
    )
    health_active_warning: int = setting(
        100,
        "Active jobs above which health is warning.",
        low=0,
    )
    health_delayed_warning: int = setting(
        500,
        "Delayed jobs above which health is warning.",
        low=0,
    )
    builtin_jobs: str = setting(
        "auto",
        "Built-in job types the appliance runs itself, comma-separated, or auto: http, "
        "backup-data and generate-report always, send-email when smtp_host is set, "
        "process-payment when payment_url is set. A type not run here waits for an external "
        "worker like any other job name.",
    )
    http_allowed_hosts: str = setting(
        "",
        "Host names and networks (CIDR), comma-separated, that http jobs may call although "
        "they are not public (loopback, private, link-local). Empty: http jobs reach public "
        "addresses only.",
    )
    smtp_host: str = setting(
        "",
        "SMTP server for send-email jobs. Empty: send-email jobs fail, saying so.",
    )
    smtp_port: int = setting(
        587,
        "SMTP port.",
        low=1, high=65535,
    )
    smtp_security: str = setting(
        "starttls",
        "none, starttls or tls (implicit TLS, usually port 465).",
        choices=('none', 'starttls', 'tls'),
    )
    smtp_user: str = setting(
        "",
        "SMTP user name (empty: no login).",
    )
    smtp_password: str = setting(
        "",
        "SMTP password.",
        secret=True,
    )
    smtp_from: str = setting(
        "queueapp@localhost",
        "Sender of send-email jobs that give no data.from.",
    )
    payment_url: str = setting(
        "",
        "Endpoint that process-payment jobs POST to. Empty: they fail, saying so.",
    )
    payment_token: str = setting(
        "",
        "Bearer token sent to payment_url.",
        secret=True,
    )
    backup_dir: str = setting(
        "./backups",
        "Folder of backup-data jobs' copies of the database.",
    )
    backup_keep: int = setting(
        7,
        "How many backups backup-data keeps (the newest).",
        low=1,
    )
    report_dir: str = setting(
        "./reports",
        "Folder of generate-report jobs' JSON and CSV files.",
    )
    log_level: str = setting(
        "info",
        "debug, info, warning or error.",
        choices=('debug', 'info', 'warning', 'error'),
    )
    event_loop: str = setting(
        "auto",
        "auto: uvloop when installed (it is by default), else asyncio; or asyncio, "
        "uvloop.",
        choices=('auto', 'asyncio', 'uvloop'),
    )
    otel_endpoint: str = setting(
        "",
        "OTLP/HTTP endpoint (http://collector:4318) that receives the appliance's traces: "
        "every enqueue, wait and attempt as OpenTelemetry spans. Needs the otel extra. "
        "Empty: the OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT "
        "environment variable, else no spans (jobs still carry their producer's "
        "traceparent to their workers).",
    )
    # Per-queue overrides from the config file's [queues.NAME] tables.
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def clustered(self) -> bool:
        return self.cluster == "on"

    @property
    def builtin_job_names(self) -> tuple[str, ...]:
        if self.builtin_jobs.strip() == "auto":
            # backup-data copies a SQLite file; PostgreSQL is backed up by its own tools
            names = ["http", "generate-report"] + ([] if postgres_url(self.db) else ["backup-data"])
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
                               self.backup_keep, self.report_dir, self.http_allowed_hosts, self.callback_secret)

    def per_queue(self) -> QueueSettings:
        """The settings a queue's ``[queues.NAME]`` table may override, as one value
        that answers them for any queue."""
        return QueueSettings({name: getattr(self, name) for name in QUEUE_KEYS}, self.queues, self.stuck_after_ms)

    def secrets(self) -> tuple[str, ...]:
        """The values that must never appear in a log line, an answer or a repr."""
        return tuple(getattr(self, s.name) for s in SETTINGS if s.secret and getattr(self, s.name))

    def _check_urls(self) -> None:
        for name in ("payment_url", "alert_webhook_url", "otel_endpoint"):
            if getattr(self, name) and not getattr(self, name).startswith(("http://", "https://")):
                raise ConfigError(f"{name} must be an http:// or https:// URL")
        if self.traces_endpoint() is not None and not _installed("opentelemetry.sdk.trace"):
            raise ConfigError("traces (otel_endpoint, or OTEL_EXPORTER_OTLP_ENDPOINT) need the OpenTelemetry SDK:"
                              " pip install 'queueapp[otel]'")

    def traces_endpoint(self) -> str | None:
        """Where traces go: otel_endpoint's traces path, "" for the SDK's own from the
        environment, or None: traces are off (OTEL_SDK_DISABLED=true turns them off
        too, as for any OpenTelemetry program)."""
        if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return None
        if self.otel_endpoint:
            return self.otel_endpoint.rstrip("/") + "/v1/traces"
        if os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            return ""
        return None

    @property
    def handler_modules(self) -> list[str]:
        return [m.strip() for m in self.handlers.split(",") if m.strip()]

    def validate(self) -> Config:
        """Refuse a configuration that cannot work, saying which setting and why."""
        for s in SETTINGS:
            s.check(getattr(self, s.name))
        checks = [(check_location, "db"), (parse_networks, "trusted_proxies"),
                  (parse_allowed_hosts, "allowed_hosts")]
        for check, name in checks:
            try:
                check(getattr(self, name))
            except ValueError as exc:
                raise ConfigError(f"{name}: {exc}") from None
        self._check_urls()
        if self.read_token and (not self.token or self.read_token == self.token):
            raise ConfigError("read_token needs token set, and a different value")
        if self.sync_standbys and not self.replicate_to:
            raise ConfigError("sync_standbys needs replicate_to: standbys follow the replica folder")
        if self.replicate_to and postgres_url(self.db):
            raise ConfigError("replicate_to copies a SQLite database; PostgreSQL has replication of its own")
        if self.clustered and not postgres_url(self.db):
            raise ConfigError("cluster = on needs a PostgreSQL database (db = postgresql://...)")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("tls_cert and tls_key go together: give both or neither")
        unknown = set(self.builtin_job_names) - set(BUILTIN_JOBS)
        if unknown:
            raise ConfigError(f"builtin_jobs has unknown types {sorted(unknown)}; known: {', '.join(BUILTIN_JOBS)}")
        return self


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its package is not there either
        return False


def default_thresholds(queue: str) -> HealthThresholds:
    """Health thresholds of the default settings (for the library)."""
    return Config().per_queue().thresholds_for(queue)


_KINDS = {"str": str, "int": int, "float": float}


@dataclass(frozen=True)
class Setting:
    """A view of one declaration of ``Config``."""

    name: str
    default: Any
    help: str
    kind: type
    choices: tuple[str, ...] | None
    low: float | None
    high: float | None
    secret: bool

    @property
    def env(self) -> str:
        return "QUEUEAPP_" + self.name.upper()

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any) -> None:
        """ConfigError when ``value`` is out of this setting's bounds or choices."""
        if self.choices is not None and value not in self.choices:
            shown = "that value" if self.secret else repr(value)
            raise ConfigError(f"{self.name} must be one of {', '.join(self.choices)}, not {shown}")
        if self.low is not None and value < self.low:
            raise ConfigError(f"{self.name} must be at least {self.low:g}" + _range(self))
        if self.high is not None and value > self.high:
            raise ConfigError(f"{self.name} must be at most {self.high:g}" + _range(self))


def _range(s: Setting) -> str:
    return f" (from {s.low:g} to {s.high:g})" if s.low is not None and s.high is not None else ""


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.name, f.default, f.metadata["help"], _KINDS[str(f.type)], f.metadata["choices"],
            f.metadata["low"], f.metadata["high"], f.metadata["secret"])
    for f in fields(Config) if "help" in f.metadata
)
HEALTH_KEYS = tuple(s.name for s in SETTINGS if s.name.startswith(HEALTH_PREFIX))
QUEUE_KEYS = ("concurrency", "aging_every_ms", "aging_max_levels", *HEALTH_KEYS)
