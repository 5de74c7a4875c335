"""A ``db`` setting that names a PostgreSQL database: ``postgresql://user@host:5432/
dbname`` (or ``postgres://``), with the usual connection options in its query
(``sslmode``, ``sslrootcert``, ``sslcert``, ``sslkey``, ``passfile``,
``application_name``, ``connect_timeout``). A password may be in the URL, but a
password file keeps it out of the process list and the config."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

SCHEMES = ("postgresql", "postgres")
OPTIONS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "passfile", "application_name", "connect_timeout")
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def postgres_url(db: str) -> str | None:
    """``db`` when it is a PostgreSQL URL (checked), None when it is not one.
    Raises ValueError naming what is wrong with a PostgreSQL URL."""
    scheme, sep, _ = db.partition("://")
    if not sep or scheme not in SCHEMES:
        return None
    parts = urlsplit(db)
    try:
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        raise ValueError(f"db {shown(db)}: the port must be a number") from None
    if not parts.hostname:
        raise ValueError(f"db {shown(db)}: name the server: postgresql://user@host:5432/dbname")
    if not parts.path.strip("/"):
        raise ValueError(f"db {shown(db)}: name the database: postgresql://user@host:5432/dbname")
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in OPTIONS:
            raise ValueError(f"db {shown(db)}: unknown option {key!r}; known: {', '.join(OPTIONS)}")
        if key == "sslmode" and value not in SSLMODES:
            raise ValueError(f"db {shown(db)}: sslmode must be one of {', '.join(SSLMODES)}")
    return db


def shown(db: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(db)
    if parts.password is None:
        return repr(db)
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return repr(parts._replace(netloc=netloc).geturl())
