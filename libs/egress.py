"""Which network addresses a remote storageUri may make the storage service connect to.

Design: a Model's storageUri is written by whoever may apply Models (a ``deployer``, not only an
admin), and the storage service fetches what it names from the node's place in the network, then
stores the answer where model code reads it. Without a policy ``http://169.254.169.254/...``
would hand a deployer the cloud metadata service (the node's instance credentials). So remote
fetches refuse every address in a blocked network (``MODELPLANE_STORAGE_BLOCKED_NETWORKS``). By
default that is:

- link-local, 169.254.0.0/16 and fe80::/10, where metadata services and link-local agents live;
- "this network", 0.0.0.0/8 and ``::``: connecting to them reaches the host itself on Linux;
- the metadata addresses outside link-local (AWS's IPv6 fd00:ec2::254, Alibaba's 100.100.100.200);
- the IPv4-mapped IPv6 forms of the IPv4 ones (``::ffff:169.254.169.254``). An IPv4-mapped
  address is also checked as the IPv4 address it stands for, so an operator's own IPv4 list
  covers it without spelling it twice.

Loopback and the private ranges stay allowed by default: a MinIO, registry mirror or emulator on
the laptop or the LAN is the common setup, and clusters that must block them list them.

Where it is checked: the storage service's HTTP client checks the address a name resolved to, at
connect time and for every redirect, so a name that resolves into a blocked network is caught
(``services/storage/fetchers/egress.py``); the api refuses a literal blocked IP at apply time, as
a cheap early answer. Both name ``spec.storageUri`` and show the URI without its query string.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from modelplane.libs.errors import InvalidError, PermanentError
from modelplane.libs.uris import redact_uri

STORAGE_FIELD = "spec.storageUri"
BLOCKED_NETWORKS_ENV = "MODELPLANE_STORAGE_BLOCKED_NETWORKS"
DEFAULT_BLOCKED_NETWORKS = ",".join(
    [
        "169.254.0.0/16",
        "fe80::/10",
        "0.0.0.0/8",
        "::/128",
        "fd00:ec2::254/128",
        "100.100.100.200/32",
        "::ffff:169.254.0.0/112",
        "::ffff:0.0.0.0/104",
        "::ffff:100.100.100.200/128",
    ]
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressRefused(PermanentError):
    """A fetch would connect to an address in a blocked network; retrying will not help."""

    def __init__(self, shown_uri: str, reason: str, *, address: str, network: Network) -> None:
        super().__init__(f"{shown_uri} may not be fetched: {reason}", field=STORAGE_FIELD)
        # Why, without the URI: a caller that knows the storageUri better re-raises with it.
        self.reason = reason
        self.address = address
        self.network = network


def parse_networks(value: str) -> tuple[Network, ...]:
    """``"169.254.0.0/16, fe80::/10"`` -> networks; ValueError naming the item that is not a CIDR."""
    networks: list[Network] = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ValueError(f"{item!r} is not a network (CIDR such as 169.254.0.0/16): {exc}") from None
    return tuple(networks)


def literal_ip(host: str) -> Address | None:
    """``host`` as an IP address when it is one (brackets, scope id allowed), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """The networks remote fetches may not connect to."""

    blocked: tuple[Network, ...]

    @classmethod
    def parse(cls, value: str) -> EgressPolicy:
        return cls(parse_networks(value))

    def describe(self) -> str:
        if not self.blocked:
            return "every address may be fetched from"
        return "no fetch from " + ", ".join(str(n) for n in self.blocked)

    def blocking(self, address: str | Address) -> Network | None:
        """The blocked network holding ``address`` (or the IPv4 address it maps), else None."""
        ip = literal_ip(address) if isinstance(address, str) else address
        if ip is None:
            return None
        candidates: list[Address] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        for candidate in candidates:
            for network in self.blocked:
                if candidate.version == network.version and candidate in network:
                    return network
        return None

    def check_address(self, uri: str, host: str, address: str) -> None:
        """EgressRefused when ``host`` (of ``uri``) resolved to ``address`` in a blocked network."""
        network = self.blocking(address)
        if network is None:
            return
        via = "" if literal_ip(host) is not None else f" ({host} resolves to {address})"
        raise EgressRefused(
            redact_uri(uri),
            f"{address}{via} is in the blocked network {network} ({BLOCKED_NETWORKS_ENV})",
            address=address,
            network=network,
        )

    def check_literal(self, uri: str) -> None:
        """InvalidError when ``uri`` is http(s) with a literal IP host in a blocked network.

        Names are not resolved here: that happens at fetch time, where the address is the one
        actually connected to.
        """
        try:
            parts = urlsplit(uri.strip())
            host = parts.hostname
        except ValueError:
            return  # not a URL: the fetcher reports it
        if parts.scheme.lower() not in ("http", "https") or not host:
            return
        try:
            self.check_address(uri, host, host)
        except EgressRefused as exc:
            raise InvalidError(exc.message, field=STORAGE_FIELD) from None
