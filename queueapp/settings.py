"""Where settings come from: the command line, the environment, a TOML file, and
files holding secrets. ``load_config`` merges them over the declared defaults
(config.py) and validates once; an error names the setting and where it came from."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import QUEUE_KEYS, SETTINGS, Config, ConfigError, Setting

BY_NAME = {s.name: s for s in SETTINGS}
SECRET_FILES = {f"{s.name}_file": s for s in SETTINGS if s.secret}


def convert(setting: Setting, value: Any, source: str) -> Any:
    """A value of the setting's type, or ConfigError naming ``source``."""
    shown = "that value" if setting.secret else repr(value)
    if setting.kind in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{setting.name} from {source} must be a number")
        try:
            return setting.kind(value)
        except (TypeError, ValueError):
            kind = "a whole number" if setting.kind is int else "a number"
            raise ConfigError(f"{setting.name} from {source} must be {kind}, not {shown}") from None
    return given_secret(setting, str(value), source) if setting.secret else str(value)


def secret_from_file(path: Any) -> str:
    """The secret held in the file at ``path`` (ValueError saying why not). An empty,
    blank or unreadable file is an error: a secret that silently became "" would turn
    its protection off."""
    try:
        secret = Path(str(path)).read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not text"
        raise ValueError(f"cannot read {path}: {reason}") from None
    if not secret:
        raise ValueError(f"{path} is empty; a secret file must hold the secret")
    return secret


def read_secret(setting: Setting, path: Any, source: str) -> str:
    try:
        return secret_from_file(path)
    except ValueError as exc:
        raise ConfigError(f"{setting.name} from {source}: {exc}") from None


def given_secret(setting: Setting, value: str, source: str) -> str:
    """A secret given as a value: blank is refused, as from a file (leave the setting
    out for none)."""
    if value and not value.strip():
        raise ConfigError(f"{setting.name} from {source} is blank; leave it unset for none")
    return value


def load_config(
    overrides: dict[str, Any] | None = None,
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build the configuration from the command line ``overrides`` (None values are
    ignored; ``<secret>_file`` keys read the secret from a file), the environment,
    and the TOML ``config_file``."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    config_file = config_file or env.get("QUEUEAPP_CONFIG")
    if config_file:
        _from_file(config_file, values, sources)
    for s in SETTINGS:
        if s.env in env:
            values[s.name], sources[s.name] = convert(s, env[s.env], s.env), s.env
        if s.secret and s.env + "_FILE" in env:
            values[s.name] = read_secret(s, env[s.env + "_FILE"], s.env + "_FILE")
            sources[s.name] = s.env + "_FILE"
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key in SECRET_FILES:
            s = SECRET_FILES[key]
            values[s.name], sources[s.name] = read_secret(s, value, "--" + key.replace("_", "-")), key
        else:
            s = BY_NAME[key]
            values[key], sources[key] = convert(s, value, s.option), s.option
    config = Config(**values)
    try:
        return config.validate()
    except ConfigError as exc:
        name = str(exc).split(" ", 1)[0].rstrip(":")
        where = sources.get(name)
        raise ConfigError(f"{exc} (from {where})" if where else str(exc)) from None


def _from_file(config_file: str, values: dict[str, Any], sources: dict[str, str]) -> None:
    try:
        with Path(config_file).open("rb") as f:
            from_file = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {config_file}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from None
    values["queues"] = _queue_tables(from_file.pop("queues", {}), config_file)
    for key, value in from_file.items():
        if key in SECRET_FILES:
            s = SECRET_FILES[key]
            values[s.name] = read_secret(s, value, config_file)
        elif key in BY_NAME:
            values[key] = convert(BY_NAME[key], value, config_file)
        else:
            raise ConfigError(f"unknown setting {key!r} in {config_file}")
        sources[SECRET_FILES[key].name if key in SECRET_FILES else key] = config_file


def _queue_tables(tables: Any, source: str) -> dict[str, dict[str, Any]]:
    """``[queues.NAME]`` tables: per-queue concurrency, aging and health thresholds,
    and a ``[queues.NAME.groups]`` table of group limits."""
    if not isinstance(tables, dict):
        raise ConfigError(f"queues in {source} must be tables like [queues.emails]")
    result = {}
    for queue, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(f"queues.{queue} in {source} must be a table")
        table = dict(table)
        groups = _group_table(table.pop("groups", {}), f"{source} [queues.{queue}.groups]")
        unknown = set(table) - set(QUEUE_KEYS)
        if unknown:
            raise ConfigError(f"unknown setting(s) {sorted(unknown)} in [queues.{queue}] of {source}")
        result[queue] = {k: convert(BY_NAME[k], v, f"{source} [queues.{queue}]") for k, v in table.items()}
        if groups:
            result[queue]["groups"] = groups
    return result


# [queues.NAME.groups]: the limits of each group key of a queue, with their bounds.
GROUP_KEYS = {"concurrency": (1, 100_000), "rate_max": (1, 1_000_000), "rate_per_ms": (1, 86_400_000)}


def _group_table(table: Any, where: str) -> dict[str, int]:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = set(table) - set(GROUP_KEYS)
    if unknown:
        raise ConfigError(f"unknown setting(s) {sorted(unknown)} in {where}; known: {', '.join(GROUP_KEYS)}")
    for key, value in table.items():
        low, high = GROUP_KEYS[key]
        if type(value) is not int or not low <= value <= high:
            raise ConfigError(f"{key} in {where} must be a whole number from {low} to {high}")
    if ("rate_max" in table) != ("rate_per_ms" in table):
        raise ConfigError(f"rate_max and rate_per_ms in {where} go together: give both or neither")
    return dict(table)
