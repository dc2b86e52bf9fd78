"""The async server: ``asyncnet.serve`` and ``asyncnet.AsyncServer`` (SPEC section 10).

How this works.  ``serve`` checks everything, binds the listeners
(``twinsock._listeners``) and registers each with the event loop's
``add_reader``: there is no accept task, the loop calls ``_accept`` when a
listener is readable, and ``_accept`` takes a batch of connections.  At
``max_connections``, or while backing off after an accept error, the
listeners are taken off the loop (``remove_reader``), so new clients wait in
the kernel's backlog; every decision (limit, back-off, which errors skip)
comes from ``_core.serving``.  Each connection is one task, created straight
on the handler's coroutine, exactly as a hand-written accept loop would: the
server adds nothing per request, only a done-callback that closes the
connection, logs what escaped the handler and counts.  With TLS the task
first runs the handshake under ``handshake_timeout``.  ``shutdown`` closes
the listeners, waits out the grace period, closes the connections that are
left (their waiting calls raise ``SocketClosedError``), and cancels the
tasks that still do not end.  The public docstrings are the twins' shared
texts (``_core.docs.serving``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from twinsock._async.dial import wrap_connected_socket
from twinsock._async.socket import AsyncSocket
from twinsock._core import serving as rules
from twinsock._core.docs import ASYNC, shared_doc, shared_docs
from twinsock._core.docs.serving import FUNCTIONS, SERVER
from twinsock._core.flags import is_disconnection_error
from twinsock._core.serving import (
    DEFAULT_GRACE,
    AcceptAction,
    AcceptBackoff,
    ServeOptions,
    ServerStats,
    Tally,
)
from twinsock._core.targets import format_endpoint
from twinsock._core.types import DEFAULT_FLAGS
from twinsock._listeners import describe, listener_addresses, listeners_for
from twinsock.addresses import SocketAddress, check_port, is_ip_address
from twinsock.tls import HandshakeType, SslContext

__all__ = ["AsyncServer", "open_listeners", "serve"]

log = logging.getLogger("twinsock.server")

#: Accepts per listener per wake-up (asyncio's own servers take a backlog's worth).
_ACCEPT_BATCH = 64

AsyncHandler = Callable[[AsyncSocket], Coroutine[Any, Any, object]]


@shared_docs(SERVER, ASYNC)
class AsyncServer:
    """A started async server: the event loop accepts, a task per connection serves.

    Made by ``asyncnet.serve``; an async context manager whose exit awaits
    ``shutdown()``.
    """

    def __init__(
        self,
        handler: AsyncHandler,
        listeners: list[socket.socket],
        options: ServeOptions,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._handler = handler
        self._listeners = listeners
        self._options = options
        self._loop = loop
        self._addresses = listener_addresses(listeners)
        endpoints = [describe(sock) for sock in listeners]
        self._names = ", ".join(endpoints)
        self._tally = Tally(options.max_connections)
        self._backoff = AcceptBackoff()
        self._conns: dict[asyncio.Task[Any], tuple[AsyncSocket, str, float]] = {}
        self._watching = False
        self._closing = False
        self._aborted = False
        self._resume: asyncio.TimerHandle | None = None
        self._attention: asyncio.Future[None] | None = None  # shutdown waits on it
        self._shutdown_task: asyncio.Task[None] | None = None
        self._done: asyncio.Future[None] = loop.create_future()
        for endpoint in endpoints:
            log.info(rules.LOG_LISTENING, endpoint)
        self._watch(True)

    async def __aenter__(self) -> AsyncServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    def __repr__(self) -> str:
        state = "serving" if self.is_serving() else "closed"
        return f"<twinsock.asyncnet.AsyncServer {state} {self._names}>"

    # -- the public face ---------------------------------------------------------------------

    @property
    def addresses(self) -> list[SocketAddress]:
        return list(self._addresses)

    @property
    def port(self) -> int:
        return self._addresses[0].port if self._addresses else 0

    @property
    def stats(self) -> ServerStats:
        return self._tally.snapshot()

    def is_serving(self) -> bool:
        return not self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._watch(False)
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        for sock in self._listeners:
            sock.close()

    async def shutdown(self, grace: float = DEFAULT_GRACE) -> None:
        grace = rules.check_grace(grace)
        await asyncio.shield(self._start_shutdown(grace))

    async def serve_forever(self, grace: float = DEFAULT_GRACE) -> None:
        await self._run_until_stopped(rules.check_grace(grace), escalate=True)

    # -- waiting for the end ---------------------------------------------------------------

    async def _run_until_stopped(self, grace: float, *, escalate: bool) -> None:
        """``serve_forever``; ``escalate=False`` (a worker): every signal is a graceful stop."""
        signals = 0

        def on_signal() -> None:
            nonlocal signals
            signals += 1
            if signals > 1 and escalate:
                self._abort()
            self._start_shutdown(grace)

        installed: list[tuple[int, Any]] = []
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous = signal.getsignal(signum)
                try:
                    self._loop.add_signal_handler(signum, on_signal)
                except (NotImplementedError, RuntimeError, ValueError):
                    continue  # a loop without signal support: serve without
                installed.append((signum, previous))
        try:
            await asyncio.shield(self._done)
        except asyncio.CancelledError:
            self.close()
            raise
        finally:
            for number, handler in installed:
                self._loop.remove_signal_handler(number)
                signal.signal(number, handler)

    def _start_shutdown(self, grace: float) -> asyncio.Task[None]:
        if self._shutdown_task is None:
            self._shutdown_task = self._loop.create_task(self._shutdown(grace))
        return self._shutdown_task

    def _abort(self) -> None:
        """Close everything now: a second signal (or the parent's ABORT)."""
        self._aborted = True
        self._poke()

    def _poke(self) -> None:
        attention = self._attention
        if attention is not None and not attention.done():
            attention.set_result(None)

    async def _wait_idle(self, timeout: float | None) -> None:
        """Until no connection is left, ``_abort``, or ``timeout`` seconds."""
        if not self._conns or self._aborted:
            return
        self._attention = self._loop.create_future()
        try:
            async with asyncio.timeout(timeout):
                await self._attention
        except TimeoutError:
            pass
        finally:
            self._attention = None

    async def _shutdown(self, grace: float) -> None:
        self.close()
        await self._wait_idle(None if math.isinf(grace) else grace)
        for conn, _, _ in list(self._conns.values()):
            conn.close()  # wakes the handler's waiting call with SocketClosedError
        await self._wait_idle(rules.HANDLER_END_WAIT)
        if self._conns:
            for task in list(self._conns):
                task.cancel()
            await self._wait_idle(rules.HANDLER_END_WAIT)
        if self._conns:
            log.warning(rules.LOG_HANDLERS_LEFT, len(self._conns))
        log.info(rules.LOG_STOPPED, self._names, self.stats.summary())
        if not self._done.done():
            self._done.set_result(None)

    # -- accepting ------------------------------------------------------------------------------

    def _watch(self, on: bool) -> None:
        """Put the listeners on the loop (accept) or take them off (leave clients queued)."""
        if on == self._watching or (on and self._closing):
            return
        self._watching = on
        for sock in self._listeners:
            if on:
                self._loop.add_reader(sock.fileno(), self._accept, sock)
            else:
                self._loop.remove_reader(sock.fileno())

    def _resume_accepting(self) -> None:
        self._resume = None
        if self._tally.has_room():
            self._watch(True)

    def _accept(self, listener: socket.socket) -> None:
        tally = self._tally
        for _ in range(_ACCEPT_BATCH):
            try:
                native, sockaddr = listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if self._accept_failed(listener, exc):
                    return
                continue
            self._backoff.succeeded()
            code = native.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code and is_disconnection_error(DEFAULT_FLAGS, code):
                native.close()  # reset before it was accepted: skipped
                tally.accept_errors += 1
                continue
            tally.opened()
            self._start(native, sockaddr)
            if not tally.has_room():  # at max_connections: leave the next ones queued
                self._watch(False)
                return

    def _accept_failed(self, listener: socket.socket, exc: OSError) -> bool:
        """Count and act on a failed accept; True when this round must end."""
        self._tally.accept_errors += 1
        failure = self._backoff.failed(exc, time.monotonic(), describe(listener))
        if failure.warning:
            log.warning(failure.warning)
        if failure.action is AcceptAction.SKIP:
            return False
        if failure.action is AcceptAction.STOP:
            self._drop_listener(listener)
        else:
            self._watch(False)
            if self._resume is not None:
                self._resume.cancel()
            self._resume = self._loop.call_later(failure.delay, self._resume_accepting)
        return True

    def _drop_listener(self, listener: socket.socket) -> None:
        if self._watching:
            self._loop.remove_reader(listener.fileno())
        self._listeners.remove(listener)
        listener.close()

    # -- one connection ---------------------------------------------------------------------------

    def _start(self, native: socket.socket, sockaddr: Any) -> None:
        peer = format_endpoint(sockaddr)
        started = time.monotonic()
        try:
            if native.family in (socket.AF_INET, socket.AF_INET6):
                native.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = AsyncSocket.from_native(native)
        except OSError as exc:  # the connection died between accept and here
            log.debug(rules.LOG_HANDLER_RAISED, peer, f"{type(exc).__name__}: {exc}")
            native.close()
            self._tally.finished(0, 0)
            return
        conn._loop = self._loop
        conn.default_timeout = self._options.call_timeout
        try:
            if self._options.ssl_context is None:
                coro = self._handler(conn)
            else:
                coro = self._handshake_then_handle(conn, peer)
            task = self._loop.create_task(coro)
        except Exception as exc:  # the handler could not even be called
            self._handler_failed(exc, peer)
            conn.close()
            self._finished(conn, peer, started)
            return
        self._conns[task] = (conn, peer, started)
        task.add_done_callback(self._task_done)

    async def _handshake_then_handle(self, conn: AsyncSocket, peer: str) -> None:
        context: SslContext = self._options.ssl_context
        try:
            await wrap_connected_socket(
                context, conn, HandshakeType.SERVER, timeout=self._options.handshake_timeout
            )
        except (OSError, ValueError) as exc:
            self._tally.handshake_failures += 1
            log.debug(rules.LOG_HANDSHAKE_FAILED, peer, exc)
            return
        await self._handler(conn)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        conn, peer, started = self._conns.pop(task)
        if not task.cancelled():
            exc = task.exception()
            if exc is not None:
                self._handler_failed(exc, peer)
        self._finished(conn, peer, started)

    def _finished(self, conn: AsyncSocket, peer: str, started: float) -> None:
        received, sent = conn.bytes_received, conn.bytes_sent
        try:
            conn.close()  # TLS: close_notify is queued ahead of the FIN
        except OSError as exc:
            log.debug("%s: closing failed: %s", peer, exc)
        if self._tally.finished(received, sent) and not self._closing and self._resume is None:
            self._watch(True)
        if not self._conns:
            self._poke()
        if log.isEnabledFor(logging.DEBUG):
            log.debug(rules.LOG_CONNECTION, peer, time.monotonic() - started, received, sent)

    def _handler_failed(self, exc: BaseException, peer: str) -> None:
        self._tally.handler_errors += 1
        level = rules.handler_error_level(exc)
        if level >= logging.ERROR:
            log.error(rules.LOG_HANDLER_RAISED, peer, type(exc).__name__, exc_info=exc)
        elif log.isEnabledFor(level):
            log.log(level, rules.LOG_HANDLER_RAISED, peer, f"{type(exc).__name__}: {exc}")


@shared_doc(FUNCTIONS, "serve", ASYNC)
async def serve(
    handler: Callable[[AsyncSocket], Coroutine[Any, Any, object]],
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    backlog: int = 1024,
    sock: socket.socket | AsyncSocket | int | None = None,
    ssl_context: SslContext | None = None,
    handshake_timeout: float = 10.0,
    max_connections: int = 10_000,
    call_timeout: float | None = None,
    reuse_port: bool = False,
) -> AsyncServer:
    rules.check_handler(handler, coroutine=True)
    listeners, options = await open_listeners(
        host,
        port,
        backlog=backlog,
        sock=sock,
        ssl_context=ssl_context,
        handshake_timeout=handshake_timeout,
        max_connections=max_connections,
        call_timeout=call_timeout,
        reuse_port=reuse_port,
    )
    return AsyncServer(handler, listeners, options, asyncio.get_running_loop())


async def open_listeners(
    host: str | None, port: int, **serve_options: Any
) -> tuple[list[socket.socket], ServeOptions]:
    """Check ``serve``'s address and options and open its listeners (``serve`` and
    ``serve_lines``): a host name is resolved (and bound) off the loop.

    Raises:
        TypeError, ValueError, AddressError, OSError: as ``serve``.
    """
    checked_host = rules.check_host(host)
    port = check_port(port)
    options = rules.check_serve_options(**serve_options)
    if options.sock is None and checked_host is not None and not is_ip_address(checked_host):
        loop = asyncio.get_running_loop()
        listeners = await loop.run_in_executor(None, listeners_for, checked_host, port, options)
    else:
        listeners = listeners_for(checked_host, port, options)
    return listeners, options
