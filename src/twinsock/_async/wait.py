"""How the async shell waits: futures bounded by a deadline, and name resolution.

How this works.  A waiting call parks one future; a loop timer fails it with
the deadline's ``NetTimeout`` (``until``).  ``resolve`` runs the shared
resolver rules in the loop's executor.  The waits that belong to one socket
(its parked futures and fd registrations, which ``close()`` must end) are
methods of the socket (``_async.base``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from twinsock._core.deadline import Deadline
from twinsock._core.targets import literal_targets
from twinsock._resolver import Resolver, getaddrinfo
from twinsock._resolver import resolve as resolve_blocking

__all__ = ["expire", "resolve", "until"]

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
