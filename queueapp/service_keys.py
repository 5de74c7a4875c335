"""The service's API keys (``service.keys``): made, rotated and revoked by an admin,
kept in the store, and known in memory so that checking a request's key costs a
hash and a look-up, never a query.

One appliance changes its keys only here, so memory follows each change as it
commits. A node of a cluster also reads every key again every FOLLOW_MS, so that a
key revoked on another node stops working here within a second.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from .access import MAX_GRACE_S, ApiKey, Principal, hash_secret, key_id_of, new_id, new_secret
from .clock import Clock
from .errors import NotFound, ValidationFailed
from .store import Store

log = logging.getLogger("queueapp.keys")

FOLLOW_MS = 500


@dataclass(frozen=True, slots=True)
class Refused:
    """A key this appliance made that may not be used any more: ``why`` (revoked,
    expired) is said to its caller, and it is not counted as a guess."""

    why: str


@dataclass(frozen=True, slots=True)
class NewKey:
    key: ApiKey
    secret: str  # shown once, never kept


class KeyDesk:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._by_id: dict[str, ApiKey] = {}

    async def load(self) -> None:
        self._by_id = {k.id: k for k in await self.store.api_keys()}

    async def follow(self) -> None:
        """Read every key again, for ever (a node of a cluster)."""
        while True:
            await asyncio.sleep(FOLLOW_MS / 1000)
            try:
                await self.load()
            except Exception:
                log.warning("could not read the API keys; the last read stands", exc_info=True,
                            extra={"event": "keys.read_failed"})

    # who a secret is ----------------------------------------------------------------

    def principal(self, secret: str) -> Principal | Refused | None:
        """Who ``secret`` makes its caller; Refused for a key revoked or expired; None
        when it is no key of this appliance's."""
        key_id = key_id_of(secret)
        key = None if key_id is None else self._by_id.get(key_id)
        now = self.clock.now_ms()
        if key is None or not key.matches(secret, now):
            return None
        state = key.state(now)
        return key.principal() if state == "active" else Refused(f"this API key is {state}")

    def active(self, key_id: str) -> ApiKey | None:
        """The key, while it may be used."""
        key = self._by_id.get(key_id)
        return key if key is not None and key.state(self.clock.now_ms()) == "active" else None

    def get(self, key_id: str) -> ApiKey:
        key = self._by_id.get(key_id)
        if key is None:
            raise NotFound(f"no API key with id {key_id}")
        return key

    def all(self) -> list[ApiKey]:
        return sorted(self._by_id.values(), key=lambda k: (k.created_at, k.id))

    # changes -----------------------------------------------------------------------------

    async def create(self, name: str, roles: list[str], queues: list[str] | None, expires_at: int | None,
                     note: str, by: str) -> NewKey:
        now = self.clock.now_ms()
        if expires_at is not None and expires_at <= now:
            message = "expiresAt must be in the future"
            raise ValidationFailed(message, [{"field": "expiresAt", "message": message}])
        key_id = new_id()
        secret = new_secret(key_id)
        key = ApiKey(key_id, name, tuple(sorted(set(roles))), None if queues is None else tuple(sorted(set(queues))),
                     note, now, by, expires_at, None, hash_secret(secret))
        await self.store.save_api_key(key)
        self._by_id[key_id] = key
        log.info("API key made", extra={"event": "keys.created", "key": key_id, "key_name": name, "by": by})
        return NewKey(key, secret)

    async def revoke(self, key_id: str, by: str) -> ApiKey:
        key = await self.store.revoke_api_key(key_id, self.clock.now_ms())
        if key is None:
            raise NotFound(f"no API key with id {key_id}")
        self._by_id[key_id] = key
        log.info("API key revoked", extra={"event": "keys.revoked", "key": key_id, "key_name": key.name, "by": by})
        return key

    async def rotate(self, key_id: str, grace_s: int, by: str) -> NewKey:
        """A new secret for the key; the old one stays good for ``grace_s`` seconds."""
        if not 0 <= grace_s <= MAX_GRACE_S:
            message = f"graceSeconds must be from 0 to {MAX_GRACE_S}"
            raise ValidationFailed(message, [{"field": "graceSeconds", "message": message}])
        now = self.clock.now_ms()
        secret = new_secret(key_id)
        key = await self.store.rotate_api_key(key_id, hash_secret(secret), now + grace_s * 1000 if grace_s else None,
                                              now)
        if key is None:
            raise NotFound(f"no API key with id {key_id} that is not revoked")
        self._by_id[key_id] = key
        log.info("API key rotated", extra={"event": "keys.rotated", "key": key_id, "key_name": key.name, "by": by,
                                           "grace_s": grace_s})
        return NewKey(key, secret)
