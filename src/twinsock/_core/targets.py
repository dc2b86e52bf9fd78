"""Address targets: where a call may connect or bind, decided without I/O.

How this works.  Both shells turn a host text into a list of
``(family, sockaddr)`` targets the same way: IP literals need no resolver
(and malformed IP text is refused before it can reach DNS), resolver results
are filtered by family and de-duplicated, and endpoints are formatted for
messages.  Only the resolver call itself (``twinsock._resolver``) does I/O.
"""

from __future__ import annotations

import os
import re
import socket
from typing import Any

from twinsock.addresses import is_ip_address, parse_ip_address
from twinsock.errors import AddressError

__all__ = [
    "SockAddr",
    "any_address",
    "check_family",
    "format_endpoint",
    "literal_targets",
    "numeric_targets",
    "reject_malformed_ip",
    "resolve_targets",
    "sockaddr_text",
    "unix_path",
]

SockAddr = tuple[Any, ...] | str | bytes


def any_address(family: int) -> str:
    """The wildcard address of ``family`` (``""`` for ``bind_addr``)."""
    return "::" if family == socket.AF_INET6 else "0.0.0.0"


def check_family(address: str, family: int) -> None:
    """Raise ``AddressError`` if an IP literal does not fit the socket's family."""
    if family not in (socket.AF_INET, socket.AF_INET6) or not is_ip_address(address):
        return
    ip = parse_ip_address(address)
    want = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    if want != family:
        kind = "IPv6" if family == socket.AF_INET6 else "IPv4"
        raise AddressError(f"address {address!r} does not fit an {kind} socket")


def sockaddr_text(sockaddr: SockAddr) -> tuple[str, int]:
    """``(host, port)`` of a socket address; Unix paths give ``(path, 0)``."""
    if isinstance(sockaddr, tuple):
        return str(sockaddr[0]), int(sockaddr[1])
    if isinstance(sockaddr, bytes):  # Linux abstract names
        return sockaddr.decode("utf-8", "backslashreplace"), 0
    return sockaddr or "", 0


def format_endpoint(sockaddr: SockAddr) -> str:
    """``127.0.0.1:80``, ``[::1]:80``, a Unix path, ``@name`` for a Linux abstract
    name, or ``(unnamed)``, for messages."""
    host, port = sockaddr_text(sockaddr)
    if not isinstance(sockaddr, tuple):
        if host.startswith("\0"):
            return "@" + host[1:]
        return host or "(unnamed)"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def numeric_targets(address: str, port: int, family: int, sock_type: int) -> list[tuple[int, Any]]:
    """Resolve without I/O when possible: ``[(family, sockaddr)]`` for IP literals."""
    if not is_ip_address(address):
        return []
    ip = parse_ip_address(address)
    if ip.version == 6:
        return [(socket.AF_INET6, (str(ip), port, 0, 0))]
    return [(socket.AF_INET, (str(ip), port))]


def literal_targets(
    host: str, port: int, family: int, sock_type: int
) -> list[tuple[int, Any]] | None:
    """The targets of ``host`` when it needs no resolver (an IP literal of a usable
    family), else ``None``.  Raises for a non-str host or malformed IP text."""
    if not isinstance(host, str):
        raise TypeError(f"address must be a str, not {type(host).__name__}")
    targets = numeric_targets(host, port, family, sock_type)
    if not targets:
        reject_malformed_ip(host)
        return None
    return targets if family in (socket.AF_UNSPEC, targets[0][0]) else None


def resolve_targets(
    infos: list[tuple[Any, ...]], family: int
) -> list[tuple[int, Any]]:
    """``(family, sockaddr)`` pairs from ``getaddrinfo`` results, duplicates removed."""
    seen = set()
    targets = []
    for info in infos:
        fam, sockaddr = int(info[0]), info[4]
        if family != socket.AF_UNSPEC and fam != family:
            continue
        key = (fam, sockaddr[:2])
        if key not in seen:
            seen.add(key)
            targets.append((fam, sockaddr))
    return targets


# What the C resolver reads as a numeric IPv4 address (inet_aton's forms: one to
# four decimal, octal or hex parts).  Such text never reaches DNS as a name.
_INET_ATON_PART = r"(?:0[xX][0-9a-fA-F]*|[0-9]+)"
_INET_ATON_FORM = re.compile(rf"(?:{_INET_ATON_PART}\.){{0,3}}{_INET_ATON_PART}\.?")


def reject_malformed_ip(host: str) -> None:
    """Raise ``AddressError`` for text that can only be meant as an IP address.

    ``getaddrinfo`` would read ``"010.0.0.1"`` as octal (8.0.0.1) and
    ``"127.1"`` as 127.0.0.1, and would send ``"1.2.3.999"`` to DNS.  A host
    name never contains ``":"`` and its last label is never all digits
    (RFC 3696 section 2), so rejecting these loses no real name.
    """
    if ":" in host or _INET_ATON_FORM.fullmatch(host):
        raise AddressError(f"{host!r} is not a valid IPv4 or IPv6 address")



def unix_path(sock: socket.socket, path: str) -> str | bytes:
    if sock.family != socket.AF_UNIX:
        raise ValueError("this call needs an AF_UNIX socket")
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, (str, bytes)):
        raise TypeError(f"a Unix socket path must be a str, bytes or path, not {path!r}")
    if not path:
        raise ValueError("a Unix socket path must not be empty")
    return path
