"""How the async shell waits: futures bounded by a deadline, and fd readiness.

How this works.  A waiting call parks one future; a loop timer fails it with
the deadline's ``NetTimeout`` (``until``), or cancels the task and turns the
cancellation into ``NetTimeout`` (``deadline_scope``, for calls made of
several awaits).  Sockets without a transport (listeners, datagrams) wait
for readiness with ``add_reader`` / ``add_writer`` (``wait_fd``) only after
the system call said ``BlockingIOError``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import Any

from twinsock._base import SocketBase
from twinsock._core.deadline import Deadline
from twinsock._core.targets import literal_targets
from twinsock._resolver import Resolver, getaddrinfo
from twinsock._resolver import resolve as resolve_blocking

__all__ = ["deadline_scope", "expire", "resolve", "until", "wait_fd"]

async def until(
    waiter: asyncio.Future[None], deadline: Deadline, loop: asyncio.AbstractEventLoop | None
) -> None:
    """Await ``waiter``, failing it with the deadline's ``NetTimeout`` at expiry."""
    assert loop is not None
    timer = loop.call_later(deadline.remaining() or 0.0, expire, waiter, deadline)
    try:
        await waiter
    finally:
        timer.cancel()


def expire(waiter: asyncio.Future[None], deadline: Deadline) -> None:
    if not waiter.done():
        waiter.set_exception(deadline.error())


@contextmanager
def deadline_scope(
    deadline: Deadline, loop: asyncio.AbstractEventLoop
) -> Generator[None, None, None]:
    """Turn the deadline into a cancellation of the current task, raised as ``NetTimeout``."""
    remaining = deadline.remaining()
    if remaining is None:
        yield
        return
    task = asyncio.current_task()
    assert task is not None
    expired = False

    def fire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    handle = loop.call_later(remaining, fire)
    try:
        yield
    except asyncio.CancelledError:
        if expired and task.uncancel() == 0:
            raise deadline.error() from None
        raise
    finally:
        handle.cancel()


async def wait_fd(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, write: bool, deadline: Deadline,
    owner: SocketBase,
) -> None:
    """Wait until ``sock`` is readable (or writable), within ``deadline``."""
    fd = sock.fileno()
    waiter: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not waiter.done():
            waiter.set_result(None)

    add: Callable[..., Any] = loop.add_writer if write else loop.add_reader
    remove: Callable[[int], Any] = loop.remove_writer if write else loop.remove_reader
    add(fd, ready)
    timer = None
    remaining = deadline.remaining()
    if remaining is not None:
        timer = loop.call_later(remaining, expire, waiter, deadline)
    try:
        await waiter
    finally:
        if owner._sock is not None:
            remove(fd)
        if timer is not None:
            timer.cancel()


async def resolve(
    host: str, port: int, family: int, sock_type: int, deadline: Deadline,
    resolver: Resolver | None,
) -> list[tuple[int, Any]]:
    """Resolve in the loop's executor (the blocking resolver rules, run off-loop)."""
    literal = literal_targets(host, port, family, sock_type)
    if literal is not None:
        return literal
    loop = asyncio.get_running_loop()
    unlimited = Deadline(None, deadline.operation)
    job = loop.run_in_executor(
        None, resolve_blocking, host, port, family, sock_type, unlimited,
        resolver or getaddrinfo,
    )
    remaining = deadline.remaining()
    if remaining is None:
        return await job
    try:
        async with asyncio.timeout(remaining):
            return await job
    except TimeoutError:
        raise deadline.error(f"resolving {host!r}") from None
