"""Where a built-in ``http`` job may connect: the destination policy.

Anyone who may enqueue could otherwise make the appliance call its own host, the
cloud's metadata address (169.254.169.254) or the private network, and read the
answer back in the job's result. By default an ``http`` job may reach only public
addresses: loopback, link-local, private, shared, multicast, reserved and
unspecified addresses are refused, checked on the addresses a name resolves to (so a
public name pointing inside is refused too) and again at every redirect. The
``http_allowed_hosts`` setting lists host names and networks (CIDR) that may be
reached all the same. The operator's own URLs (payment_url, the alert webhook) are
trusted and not checked.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class DestinationRefused(OSError):
    """A connection the policy does not allow; the job fails for good, saying why."""


class DestinationPolicy:
    def __init__(self, allowed: str = "") -> None:
        self.hosts: set[str] = set()
        self.networks: list[Network] = []
        for item in (part.strip() for part in allowed.split(",")):
            if not item:
                continue
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                self.hosts.add(item.lower().rstrip("."))

    def host_allowed(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def refusal(self, address: str) -> str | None:
        """Why ``address`` may not be reached, or None when it may."""
        try:
            ip: Address = ipaddress.ip_address(address.split("%")[0])
        except ValueError:
            return f"{address} is not an IP address"
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.networks):
            return None
        if ip.is_global and not ip.is_multicast:
            return None
        kind = ("loopback" if ip.is_loopback else "link-local" if ip.is_link_local
                else "multicast" if ip.is_multicast else "private or reserved")
        return (f"{address} is a {kind} address, which http jobs may not call;"
                " list it in http_allowed_hosts to allow it")

    def check_literal(self, host: str) -> None:
        """For a URL whose host is an IP address (no name to resolve)."""
        try:
            ipaddress.ip_address(host.strip("[]").split("%")[0])
        except ValueError:
            return
        reason = self.refusal(host.strip("[]"))
        if reason is not None:
            raise DestinationRefused(reason)


class PolicyResolver(AbstractResolver):
    """Resolves names as usual, then keeps only the addresses the policy allows."""

    def __init__(self, policy: DestinationPolicy) -> None:
        self.policy = policy
        self._inner = ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: Any = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if self.policy.host_allowed(host):
            return results
        allowed = [r for r in results if self.policy.refusal(r["host"]) is None]
        if not allowed:
            reason = self.policy.refusal(results[0]["host"]) if results else "no address"
            raise DestinationRefused(f"{host} resolves to {reason}")
        return allowed

    async def close(self) -> None:
        await self._inner.close()
