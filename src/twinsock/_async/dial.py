"""The async shell's module functions: ``dial`` (Happy Eyeballs), ``wrap_*``.

How this works.  The twin of ``_blocking.dial``: the same resolver rules (run
in the loop's executor), the same Happy Eyeballs schedule from the core, with
one connect task per attempt; the first connection wins and the rest are
cancelled and closed.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from twinsock._async.socket import AsyncSocket
from twinsock._async.wait import resolve
from twinsock._base import prepare_wrap
from twinsock._core.deadline import Deadline, check_timeout
from twinsock._core.docs import ASYNC, shared_doc
from twinsock._core.docs.serving import FUNCTIONS
from twinsock._core.eyeballs import Attempts, interleave
from twinsock._core.targets import format_endpoint
from twinsock._resolver import Resolver
from twinsock.addresses import check_port
from twinsock.nativesockets import Protocol, to_sock_type
from twinsock.tls import HandshakeType, SslContext

__all__ = ["dial", "wrap_connected_socket", "wrap_socket"]

@shared_doc(FUNCTIONS, "dial", ASYNC)
async def dial(
    address: str,
    port: int,
    protocol: Protocol | int = Protocol.IPPROTO_TCP,
    buffered: bool = True,
    timeout: float | None = None,
    *,
    resolver: Resolver | None = None,
) -> AsyncSocket:
    timeout = check_timeout(timeout)
    port = check_port(port)
    sock_type = to_sock_type(Protocol(protocol))
    deadline = Deadline(timeout, "dial")
    loop = asyncio.get_running_loop()
    targets = interleave(
        await resolve(address, port, socket.AF_UNSPEC, sock_type, deadline, resolver)
    )
    # The schedule works on endpoint texts, so the notes read "attempt to [::1]:80".
    by_endpoint = {format_endpoint(sockaddr): (family, sockaddr) for family, sockaddr in targets}
    attempts: Attempts[str] = Attempts(list(by_endpoint))
    racing: dict[asyncio.Task[None], tuple[socket.socket, str]] = {}
    winner: socket.socket | None = None
    describe = f"dial {address}:{port}"
    try:
        while winner is None:
            now = time.monotonic()
            while (target := attempts.next_target(now)) is not None:
                family, sockaddr = by_endpoint[target]
                native = socket.socket(family, sock_type, int(protocol))
                native.setblocking(False)
                task = loop.create_task(_connect_task(loop, native, sockaddr))
                racing[task] = (native, target)
            if attempts.exhausted():
                raise attempts.final_error(describe)
            wait = attempts.wait_time(time.monotonic(), deadline.remaining())
            if racing:
                done, _ = await asyncio.wait(racing, timeout=wait,
                                             return_when=asyncio.FIRST_COMPLETED)
            else:
                done = set()
                await asyncio.sleep(wait or 0)
            for task in done:
                native, target = racing.pop(task)
                error = task.exception()
                if error is None and winner is None:
                    winner = native
                else:
                    native.close()
                    if error is not None:
                        attempts.failed(target, error, time.monotonic())
            if winner is None and deadline.expired():
                error = deadline.error(describe.removeprefix("dial "))
                raise attempts.timed_out(error, [t for _n, t in racing.values()])
    finally:
        for task, (native, _target) in racing.items():
            task.cancel()
            native.close()
    result = AsyncSocket.from_native(winner, buffered=buffered)
    if int(sock_type) == socket.SOCK_STREAM:
        await result._attached("dial")
    return result


@shared_doc(FUNCTIONS, "wrap_socket", ASYNC)
def wrap_socket(ctx: SslContext, sock: AsyncSocket) -> None:
    prepare_wrap(ctx, sock)


@shared_doc(FUNCTIONS, "wrap_connected_socket", ASYNC)
async def wrap_connected_socket(
    ctx: SslContext,
    sock: AsyncSocket,
    handshake: HandshakeType = HandshakeType.CLIENT,
    hostname: str | None = None,
    timeout: float | None = None,
) -> None:
    timeout = sock._timeout(timeout) if isinstance(sock, AsyncSocket) else check_timeout(timeout)
    server_side = prepare_wrap(ctx, sock, handshake, hostname)
    sock._loop_now()
    await sock._tls_handshake(
        Deadline(timeout, "wrap_connected_socket"), server_side=server_side, hostname=hostname
    )


async def _connect_task(loop: asyncio.AbstractEventLoop, sock: socket.socket, target: Any) -> None:
    await loop.sock_connect(sock, target)
