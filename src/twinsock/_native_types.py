"""The operating system's numbers for socket families, types and protocols.

``twinsock.nativesockets`` exports these enums (the reference shows them
there); they live in this module of their own so that the name-service
lookups (``twinsock._netdb``) can use them without a circular import.
"""

from __future__ import annotations

import enum
import socket

__all__ = ["Domain", "Protocol", "SockType"]


class Domain(enum.IntEnum):
    """Socket domain (address family), with the OS values."""

    AF_UNSPEC = socket.AF_UNSPEC
    AF_UNIX = getattr(socket, "AF_UNIX", 1)
    AF_INET = socket.AF_INET
    AF_INET6 = socket.AF_INET6


class SockType(enum.IntEnum):
    """Socket type, with the OS values."""

    SOCK_STREAM = socket.SOCK_STREAM
    SOCK_DGRAM = socket.SOCK_DGRAM
    SOCK_RAW = socket.SOCK_RAW
    SOCK_SEQPACKET = getattr(socket, "SOCK_SEQPACKET", 5)


class Protocol(enum.IntEnum):
    """IP protocol number, with the OS values."""

    IPPROTO_TCP = socket.IPPROTO_TCP
    IPPROTO_UDP = socket.IPPROTO_UDP
    IPPROTO_IP = socket.IPPROTO_IP
    IPPROTO_IPV6 = socket.IPPROTO_IPV6
    IPPROTO_RAW = socket.IPPROTO_RAW
    IPPROTO_ICMP = socket.IPPROTO_ICMP
    IPPROTO_ICMPV6 = socket.IPPROTO_ICMPV6
