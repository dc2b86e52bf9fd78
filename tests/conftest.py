"""Shared fixtures: socket kinds, loopback families, and connected pairs.

``pair`` gives a twinsock socket (of every kind) connected to a plain stdlib
socket peer, over TCP IPv4, TCP IPv6 and Unix stream sockets; a module that
overrides ``family`` with ``ALL_FAMILIES`` also gets ``"tls"``: a twinsock
TLS client against a stdlib ``ssl`` server (``tests/tls_pair.py``).
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from twins import available_kinds, make_kind

FAMILIES = ["tcp4", "tcp6", "unix"]
#: The families of the conformance body: the plain ones and TLS over TCP.
ALL_FAMILIES = [*FAMILIES, "tls"]


@pytest.fixture(params=available_kinds(), scope="session")
def kind(request: pytest.FixtureRequest) -> Iterator[Any]:
    k = make_kind(request.param)
    yield k
    k.close()


def stdlib_pair(family: str) -> tuple[socket.socket, socket.socket]:
    """Two connected stdlib sockets of ``family`` over loopback."""
    if family == "unix":
        path = tempfile.mktemp(prefix="twinsock-", suffix=".sock")
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(path)
        target: Any = path
    else:
        af, host = (socket.AF_INET, "127.0.0.1") if family == "tcp4" else (socket.AF_INET6, "::1")
        listener = socket.socket(af)
        listener.bind((host, 0))
        target = listener.getsockname()
    listener.listen(1)
    client = socket.socket(listener.family)
    client.connect(target)
    server, _ = listener.accept()
    listener.close()
    if family == "unix":
        os.unlink(path)
    return client, server


def make_pair(kind: Any, family: str, **options: Any) -> tuple[Any, Any]:
    """(twinsock socket of ``kind``, peer), connected over ``family`` (any of
    ``ALL_FAMILIES``); ``options`` go to ``from_native``."""
    if family == "tls":
        from tls_pair import tls_pair

        return tls_pair(kind, **options)
    ours, peer = stdlib_pair(family)
    return kind.from_native(ours, **options), peer


@pytest.fixture(params=FAMILIES)
def family(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def pair(kind: Any, family: str) -> Iterator[tuple[Any, Any]]:
    """(twinsock socket, stdlib peer), connected."""
    twin, peer = make_pair(kind, family)
    yield twin, peer
    twin.close()
    peer.close()


@pytest.fixture
def unbuffered_pair(kind: Any, family: str) -> Iterator[tuple[Any, Any]]:
    twin, peer = make_pair(kind, family, buffered=False)
    yield twin, peer
    twin.close()
    peer.close()
