"""Addresses, networks and host names named in settings."""

from __future__ import annotations

import ipaddress

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> list[Network]:
    """Addresses or CIDR networks, comma-separated (ValueError for a bad one)."""
    return [ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()]


ANY = "*"  # allowed_hosts: any name


def parse_allowed_hosts(text: str) -> tuple[str, ...]:
    """The names of the setting, lower case (ValueError for one that cannot be a
    host name)."""
    names = tuple(part.strip().lower().rstrip(".") or "." for part in text.split(",") if part.strip())
    for name in names:
        bare = name.removeprefix(".")
        if name != ANY and (not bare or any(c in bare for c in "/:@ ?#[]")):
            raise ValueError(f"{name!r} is not a host name (a name, .domain for a domain and its names, or *)")
    return names


def host_name(header: str) -> str:
    """The name of a ``Host`` header, without its port and brackets, lower case."""
    text = header.strip().lower()
    if text.startswith("["):
        return text[1:].partition("]")[0]
    if text.count(":") == 1:
        text = text.partition(":")[0]
    return text.rstrip(".")


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class AllowedHosts:
    def __init__(self, listen_host: str, extra: tuple[str, ...]) -> None:
        self.any = ANY in extra
        self.names = {"localhost", host_name(listen_host), *(n for n in extra if not n.startswith("."))}
        self.domains = tuple(n for n in extra if n.startswith(".")) + (".localhost",)

    def allows(self, header: str | None) -> bool:
        if header is None or self.any:
            return True  # HTTP/1.0 without Host: no browser sends that
        name = host_name(header)
        if name in self.names or _is_address(name):
            return True
        return any(name.endswith(domain) or name == domain[1:] for domain in self.domains)
