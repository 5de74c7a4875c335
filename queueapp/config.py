"""Every setting, with its default and help text, validated once at start-up.

A setting is taken from, in order: the command line, the environment
(``QUEUEAPP_<NAME>``), the config file (TOML, ``--config``), the default.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any


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
    Setting("max_body_bytes", 1_048_576, "Largest request body accepted, in bytes (413 above).", int),
    Setting(
        "rate_limit", 0,
        "Enqueue requests per second allowed per client address (429 beyond). 0: no limit.", int,
    ),
    Setting("rate_burst", 0, "Enqueue requests a client may send at once before rate_limit applies. 0: same as rate_limit.", int),
    Setting("shutdown_grace_ms", 10_000, "On stop, how long running jobs may take to finish, in ms.", int),
    Setting("log_level", "info", "debug, info, warning or error."),
    Setting(
        "event_loop", "auto",
        "auto: uvloop when installed (pip install queueapp[fast]), else asyncio; or asyncio, uvloop.",
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


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
    max_body_bytes: int = 1_048_576
    rate_limit: int = 0
    rate_burst: int = 0
    shutdown_grace_ms: int = 10_000
    log_level: str = "info"
    event_loop: str = "auto"

    @property
    def handler_modules(self) -> list[str]:
        return [m.strip() for m in self.handlers.split(",") if m.strip()]

    def validate(self) -> Config:
        if self.durability not in ("full", "normal"):
            raise ConfigError(f"durability must be full or normal, not {self.durability!r}")
        if not 0 < self.port < 65536:
            raise ConfigError(f"port must be between 1 and 65535, not {self.port}")
        for name in ("concurrency", "lease_ms", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if self.rate_limit < 0 or self.rate_burst < 0:
            raise ConfigError("rate_limit and rate_burst must be at least 0")
        if self.shutdown_grace_ms < 0:
            raise ConfigError("shutdown_grace_ms must be at least 0")
        if self.event_loop not in ("auto", "asyncio", "uvloop"):
            raise ConfigError(f"event_loop must be auto, asyncio or uvloop, not {self.event_loop!r}")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise ConfigError(f"log_level must be debug, info, warning or error, not {self.log_level!r}")
        return self


def _convert(setting: Setting, value: Any, source: str) -> Any:
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
    environ: dict[str, str] | None = None,
) -> Config:
    """Build the configuration from the command line ``overrides`` (None values are
    ignored), the environment, and the TOML ``config_file``."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_file = config_file or environ.get("QUEUEAPP_CONFIG")
    if config_file:
        try:
            with Path(config_file).open("rb") as f:
                from_file = tomllib.load(f)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from None
        for key, value in from_file.items():
            if key not in _BY_NAME:
                raise ConfigError(f"unknown setting {key!r} in {config_file}")
            values[key] = _convert(_BY_NAME[key], value, config_file)
    for setting in SETTINGS:
        if setting.env in environ:
            values[setting.name] = _convert(setting, environ[setting.env], setting.env)
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = _convert(_BY_NAME[key], value, f"--{key.replace('_', '-')}")
    assert {f.name for f in fields(Config)} == set(_BY_NAME)
    return Config(**values).validate()
