"""Where webhooks may go: FLUSSO_WEBHOOK_ALLOW, checked on the address a target resolves to.

Entries are `name[:port]`, `IP[:port]` or a CIDR. What each allows:

- an IP or CIDR entry: exactly what the operator wrote, private or loopback included (the
  operator named that address); an IP entry without a port allows any port;
- a name entry: the URL's host name, only on the port given, or without one on the scheme's
  default port (80, 443), and only when the name resolves to a PUBLIC UNICAST address: never
  loopback, private, link-local, shared (100.64/10), reserved, multicast, documentation or
  unspecified addresses, nor the cloud metadata endpoints (169.254.169.254, fd00:ec2::254,
  100.100.100.200). IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are unwrapped first and
  addresses that embed an IPv4 one (6to4) are judged by it, so no spelling reaches what the
  plain address may not. A DNS answer an attacker controls therefore cannot point a name entry
  at the inside of the network.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

CLOUD_METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack, ...
    "169.254.170.2",  # AWS ECS task metadata
    "fd00:ec2::254",  # AWS over IPv6
    "100.100.100.200",  # Alibaba Cloud
))
DEFAULT_PORTS = {"http": 80, "https": 443}


class AllowListError(ValueError):
    """A FLUSSO_WEBHOOK_ALLOW entry that is neither host[:port] nor a CIDR; names the entry."""


def unwrap(ip: IPAddress) -> IPAddress:
    """::ffff:a.b.c.d -> a.b.c.d; any other address as it is."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def public_unicast(address: IPAddress) -> bool:
    """Whether a name entry may reach `address` (see the module's docstring)."""
    ip = unwrap(address)
    if ip in CLOUD_METADATA or not ip.is_global or ip.is_multicast or ip.is_reserved:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.sixtofour is not None:
        return public_unicast(ip.sixtofour)
    return True


def normal_name(host: str) -> str:
    return host.strip().lower().rstrip(".")


@dataclass(frozen=True)
class AllowList:
    hosts: tuple[tuple[str, int | None], ...] = ()  # (normalised name or IP literal, port or None)
    networks: tuple[IPNetwork, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.hosts or self.networks)

    def allows(self, host: str, port: int, address: str, scheme: str = "https") -> bool:
        """Whether a request to `scheme`://`host`:`port`, resolved to `address`, may be sent."""
        raw = ipaddress.ip_address(address.split("%")[0])
        ip = unwrap(raw)
        if any(ip in net or raw in net for net in self.networks):
            return True
        for name, allowed_port in self.hosts:
            literal = _ip_or_none(name)
            if literal is not None:
                if unwrap(literal) == ip and allowed_port in (None, port):
                    return True
            elif (name == normal_name(host) and port == (allowed_port or DEFAULT_PORTS.get(scheme))
                  and public_unicast(ip)):
                return True
        return False


def _ip_or_none(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _parse_entry(entry: str) -> tuple[str, int | None] | IPNetwork:
    if "/" in entry:
        try:
            return ipaddress.ip_network(entry, strict=False)
        except ValueError as exc:
            raise AllowListError(f"FLUSSO_WEBHOOK_ALLOW: {entry!r} is not a CIDR: {exc}") from None
    host, port = entry, None
    if entry.startswith("["):  # [v6]:port
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    elif entry.count(":") == 1:
        host, port = entry.split(":")
    try:
        number = int(port) if port is not None else None
    except ValueError:
        number = -1
    if (number is not None and not 1 <= number <= 65535) or not normal_name(host):
        raise AllowListError(f"FLUSSO_WEBHOOK_ALLOW: {entry!r} is not host[:port] or a CIDR")
    return normal_name(host), number


def parse_allow_list(text: str) -> AllowList:
    """'hooks.example.com:443, 10.0.0.0/8, 127.0.0.1:8080' -> AllowList; raises AllowListError."""
    hosts, networks = [], []
    for entry in (e.strip() for e in (text or "").split(",")):
        if entry:
            parsed = _parse_entry(entry)
            (hosts if isinstance(parsed, tuple) else networks).append(parsed)
    return AllowList(tuple(hosts), tuple(networks))
