"""Name resolution shared by both shells: one deadline over a blocking resolver.

How this works.  IP literals never reach a resolver (``_core.targets``).  A
name is resolved by ``socket.getaddrinfo`` (or a caller's ``Resolver``); with
a deadline the blocking call runs in a daemon thread so the deadline can win.
The async shell runs ``resolve`` in the loop's executor, so both shells apply
the same rules and raise the same errors.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any

from twinsock._core.deadline import Deadline
from twinsock._core.targets import literal_targets, resolve_targets

__all__ = ["Resolver", "getaddrinfo", "resolve"]

#: ``resolver(host, port, family, type)`` returning ``socket.getaddrinfo``-shaped
#: tuples; ``dial`` takes one so that tests and applications can steer resolution.
Resolver = Callable[[str, int, int, int], Sequence[tuple[Any, ...]]]


def getaddrinfo(host: str, port: int, family: int, sock_type: int) -> Sequence[tuple[Any, ...]]:
    return socket.getaddrinfo(host, port, family, sock_type)


def resolve(
    host: str,
    port: int,
    family: int,
    sock_type: int,
    deadline: Deadline,
    resolver: Resolver,
) -> list[tuple[int, Any]]:
    """``(family, sockaddr)`` targets for ``host``, resolving within the deadline."""
    literal = literal_targets(host, port, family, sock_type)
    if literal is not None:
        return literal
    if deadline.timeout is None:
        infos = resolver(host, port, family, sock_type)
    else:
        infos = _resolve_in_thread(host, port, family, sock_type, deadline, resolver)
    targets = resolve_targets(list(infos), family)
    if not targets:
        raise OSError(f"{host!r} resolved to no usable address")
    return targets


def _resolve_in_thread(
    host: str, port: int, family: int, sock_type: int, deadline: Deadline, resolver: Resolver
) -> Sequence[tuple[Any, ...]]:
    """Run a blocking resolver in a daemon thread so the deadline can win."""
    outcome: list[Any] = []
    done = threading.Event()

    def work() -> None:
        try:
            outcome.append(("ok", resolver(host, port, family, sock_type)))
        except BaseException as exc:  # handed to the caller below
            outcome.append(("error", exc))
        done.set()

    threading.Thread(target=work, name=f"twinsock-resolve-{host}", daemon=True).start()
    if not done.wait(deadline.remaining()):
        raise deadline.error(f"resolving {host!r}")
    kind, value = outcome[0]
    if kind == "error":
        raise value
    return value  # type: ignore[no-any-return]
