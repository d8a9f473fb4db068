"""The address a request came from, for per-IP rate limits, the metrics allow-list and the access
log. Behind a reverse proxy or load balancer every request arrives from the proxy, so per-IP
limits would count all customers as one; with `TRUSTED_PROXIES` set, a request from one of
those networks is attributed to the nearest address in `X-Forwarded-For` that is not itself a
trusted proxy. The header is read right to left: each proxy appends the address it received
from, and the entries left of the first untrusted one are whatever the client chose to send.
Without `TRUSTED_PROXIES` the header is ignored, so a client cannot pick its own address."""

from __future__ import annotations

import ipaddress

from aiohttp import web

from nanny.config import IPNetwork
from nanny.keys import SETTINGS

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_ADDRESS_KEY = web.RequestKey("nanny_client_address", str)


def parse_ip(text: str) -> IPAddress | None:
    """An address as text (IPv6 zone dropped, IPv4-mapped IPv6 as IPv4), or None. Some proxies
    write the port too: `203.0.113.9:54321`, `[2001:db8::1]:443`."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _trusted(address: IPAddress | None, proxies: tuple[IPNetwork, ...]) -> bool:
    return address is not None and any(address in network for network in proxies)


def client_address(request: web.Request) -> str:
    """The client's address as text ('unknown' for a Unix socket peer, or behind a trusted proxy
    that wrote something else than an address)."""
    found = request.get(_ADDRESS_KEY)
    if found is None:
        found = request[_ADDRESS_KEY] = _find(request)
    return found


def _find(request: web.Request) -> str:
    remote = request.remote or "unknown"
    proxies = request.app[SETTINGS].trusted_proxies
    if not proxies or not _trusted(parse_ip(remote), proxies):
        return remote
    forwarded = request.headers.getall("X-Forwarded-For", ())
    if not forwarded:
        return remote  # the proxy's own request (a health check, a scrape)
    hops = ",".join(forwarded).split(",")
    for hop in reversed(hops):
        address = parse_ip(hop)
        if address is None:
            # Where a trusted proxy should have written its client's address: fail closed, as
            # no address (no metrics; one shared count), never as the proxy itself.
            return "unknown"
        if not _trusted(address, proxies):
            return str(address)
        remote = str(address)
    return remote  # every hop is a trusted proxy: the request started inside them


def came_over_https(request: web.Request) -> bool:
    """Whether the client used HTTPS: to us directly, or to a trusted proxy that says so in
    `X-Forwarded-Proto` (from anyone else the header is ignored)."""
    if request.secure:
        return True
    proxies = request.app[SETTINGS].trusted_proxies
    if not proxies or not _trusted(parse_ip(request.remote or ""), proxies):
        return False
    forwarded = ",".join(request.headers.getall("X-Forwarded-Proto", ()))
    return "https" in (proto.strip().lower() for proto in forwarded.split(","))
