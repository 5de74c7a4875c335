"""What the built-in job types (workers/builtin.py) are given from the settings: their
names, and the records of their settings. Plain data, so that the settings
(config.py) can build them without importing the code that runs the jobs."""

from __future__ import annotations

from dataclasses import dataclass, field

BUILTIN_JOBS = ("http", "send-email", "process-payment", "backup-data", "generate-report")


@dataclass(frozen=True)
class SmtpSettings:
    """The defaults of each field are the settings' (config.py)."""

    host: str
    port: int
    security: str  # none, starttls or tls
    user: str
    password: str = field(repr=False)
    sender: str
    timeout_s: float = 30.0


@dataclass(frozen=True)
class BuiltinSettings:
    """The defaults of each field are the settings' (config.py)."""

    smtp: SmtpSettings | None
    payment_url: str
    payment_token: str = field(repr=False)
    backup_dir: str
    backup_keep: int
    report_dir: str
    http_allowed_hosts: str
    callback_secret: str = field(default="", repr=False)
