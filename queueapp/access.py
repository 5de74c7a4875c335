"""Who may do what: the roles a caller acts with and the queues it may touch, and the
API keys an admin makes for services.

A key's secret is ``qak_<id>_<32 letters and digits>``: the prefix lets secret
scanners find a leaked one, the id names the key without giving it away. Only the
SHA-256 of a secret is kept: a secret has about 190 random bits, so a plain hash is
as good as a slow one and costs a microsecond a request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

ENQUEUE, WORK, READ, ADMIN = "enqueue", "work", "read", "admin"
ROLES = (ENQUEUE, WORK, READ, ADMIN)
EVERY_QUEUE = "*"  # a key's queues: every queue, those made later too

KEY_PREFIX = "qak_"
ID_CHARS = 12
SECRET_CHARS = 32
_ALPHABET = string.ascii_letters + string.digits
SECRET = re.compile(rf"^{KEY_PREFIX}([A-Za-z0-9]{{{ID_CHARS}}})_[A-Za-z0-9]{{{SECRET_CHARS}}}$")
KEY_NAME = r"^[A-Za-z0-9][A-Za-z0-9 _.:@/-]{0,99}$"
MAX_NOTE_CHARS = 500
MAX_KEY_QUEUES = 100
MAX_KEYS = 1000  # keys not revoked
MAX_GRACE_S = 7 * 86_400  # how long a rotated key's old secret may stay good


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: ``name`` as the audit trail keeps it, what it may do
    (``admin`` may do everything) and in which queues (None: every queue)."""

    name: str
    roles: frozenset[str]
    queues: frozenset[str] | None = None
    key_id: str | None = None

    def may(self, role: str) -> bool:
        return ADMIN in self.roles or role in self.roles

    def may_touch(self, queue: str) -> bool:
        return self.queues is None or queue in self.queues

    @property
    def every_queue(self) -> bool:
        return self.queues is None


# No one: a request that gave no credentials where none are needed.
NOBODY = Principal("anonymous", frozenset())
# The appliance without a token, and its two configured tokens (the names the audit
# trail has always kept for them).
OPEN = Principal("open", frozenset({ADMIN}))
ADMIN_TOKEN = Principal("admin", frozenset({ADMIN}))
READ_TOKEN = Principal("read", frozenset({READ}))


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    roles: tuple[str, ...]
    queues: tuple[str, ...] | None  # None: every queue
    note: str
    created_at: int
    created_by: str
    expires_at: int | None
    revoked_at: int | None
    secret_hash: str
    # After a rotation with a grace period, the secret before it until ``previous_until``.
    previous_hash: str | None = None
    previous_until: int | None = None
    rotated_at: int | None = None

    def state(self, now: int) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def principal(self) -> Principal:
        return Principal(f"key:{self.name}", frozenset(self.roles),
                         None if self.queues is None else frozenset(self.queues), self.id)

    def matches(self, secret: str, now: int) -> bool:
        """``secret`` is this key's (or, within the grace of a rotation, its last one's)."""
        given = hash_secret(secret)
        if hmac.compare_digest(given, self.secret_hash):
            return True
        return (self.previous_hash is not None and self.previous_until is not None and now < self.previous_until
                and hmac.compare_digest(given, self.previous_hash))


def new_id() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(ID_CHARS))


def new_secret(key_id: str) -> str:
    return f"{KEY_PREFIX}{key_id}_" + "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_CHARS))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode(errors="surrogateescape")).hexdigest()


def key_id_of(secret: str) -> str | None:
    """The id a key's secret names, or None when it is not shaped like one."""
    found = SECRET.match(secret)
    return found.group(1) if found else None


def shown(key_id: str) -> str:
    """How a key's secret is shown once it is made: enough to tell which it is."""
    return f"{KEY_PREFIX}{key_id}_…"
