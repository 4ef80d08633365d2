"""Which browser requests may change the marketplace's state: those from its own pages.

A web page anywhere can make the worker's browser post a form to http://127.0.0.1:8940 (accept a
HIT, submit an answer, register a directory). Browsers say where such a request comes from:
`Sec-Fetch-Site` (same-origin, same-site, cross-site, none) and `Origin` on every POST. A request
that carries neither is not from a page (curl, boto3, the simulated crowds) and passes; one that
carries them must come from this server's own origin. On a loopback server that origin must also be
a loopback name, or a page whose DNS name was rebound to 127.0.0.1 would count as the server itself.
"""

from __future__ import annotations

import ipaddress
from typing import Mapping
from urllib.parse import urlsplit

def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() == "localhost" or host.lower().endswith(".localhost")


def origin_of(url: str) -> str | None:
    """scheme://host[:port] of an absolute URL, lower-cased; None for anything else."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def foreign(headers: Mapping[str, str], bound_host: str) -> str | None:
    """None when the request may change state; otherwise why not, in words for the 403 page."""
    site = (headers.get("Sec-Fetch-Site") or "").strip().lower()
    origin = headers.get("Origin")
    if site and site not in ("same-origin", "none"):
        return f"the browser says this request is {site}"
    if origin is None:
        return None
    host = (headers.get("Host") or "").strip().lower()
    if not host or origin_of(origin) != f"http://{host}":
        return f"it comes from {origin}, not from this marketplace's pages"
    name = urlsplit(f"//{host}").hostname or ""
    if _is_loopback(bound_host) and not _is_loopback(name):
        return f"this marketplace listens on {bound_host} only, and {name} is not a name for it"
    return None
