"""The blocking server: ``net.serve`` and ``net.Server`` (SPEC section 10).

How this works.  ``serve`` checks everything, binds the listeners
(``twinsock._listeners``) and starts one accept thread; it returns once the
server accepts.  The accept thread polls the listeners and a wake-up pipe.
While the server is at ``max_connections`` or backing off after an accept
error it polls only the pipe, so new clients wait in the kernel's backlog;
every decision (limit, back-off, which errors skip) comes from
``_core.serving``.  Each accepted connection gets a thread of its own, which
makes the ``Socket`` (buffered, Nagle off, ``default_timeout`` =
``call_timeout``), runs the TLS handshake under ``handshake_timeout``, calls
the handler and closes the connection whatever happens.  The counters live in
a ``Tally`` under one lock; a connection thread that frees a slot at the
limit wakes the accept thread through the pipe.  ``shutdown`` closes the
listeners, waits out the grace period, then closes the connections that are
left (their waiting calls raise ``SocketClosedError``).  Signal handlers only
set flags, which the waiting loops look at every ``_POLL`` seconds, so a
signal never runs code that takes a lock.  The public docstrings are the
twins' shared texts (``_core.docs.serving``).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from twinsock._blocking.dial import wrap_connected_socket
from twinsock._blocking.socket import Socket
from twinsock._core import serving as rules
from twinsock._core.docs import BLOCKING, shared_doc, shared_docs
from twinsock._core.docs.serving import FUNCTIONS, SERVER
from twinsock._core.serving import (
    DEFAULT_GRACE,
    AcceptAction,
    AcceptBackoff,
    ServeOptions,
    ServerStats,
    Tally,
)
from twinsock._core.targets import format_endpoint
from twinsock._listeners import describe, listener_addresses, listeners_for
from twinsock.addresses import SocketAddress, check_port
from twinsock.tls import HandshakeType, SslContext

__all__ = ["Server", "serve"]

log = logging.getLogger("twinsock.server")

#: How often the waiting loops look at the flags a signal handler sets.
_POLL = 0.05
#: Accepts per listener per wake-up, so one busy listener cannot starve another.
_ACCEPT_BATCH = 64

Handler = Callable[[Socket], object]


@shared_docs(SERVER, BLOCKING)
class Server:
    """A started blocking server: a thread accepts, a thread per connection serves.

    Made by ``net.serve``; a context manager whose exit calls ``shutdown()``.
    """

    def __init__(
        self, handler: Handler, listeners: list[socket.socket], options: ServeOptions
    ) -> None:
        self._handler = handler
        self._listeners = listeners
        self._options = options
        self._addresses = listener_addresses(listeners)
        endpoints = [describe(sock) for sock in listeners]
        self._names = ", ".join(endpoints)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a connection ended
        self._tally = Tally(options.max_connections)
        self._conns: set[Socket] = set()
        self._conns_closed = False
        self._closing = False
        self._aborted = False
        self._stop_requested = False
        self._shutdown_lock = threading.Lock()
        self._done = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        for endpoint in endpoints:
            log.info(rules.LOG_LISTENING, endpoint)
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"twinsock-accept {self._names}", daemon=True
        )
        self._acceptor.start()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        state = "serving" if self.is_serving() else "closed"
        return f"<twinsock.net.Server {state} {self._names}>"

    # -- the public face ---------------------------------------------------------------------

    @property
    def addresses(self) -> list[SocketAddress]:
        return list(self._addresses)

    @property
    def port(self) -> int:
        return self._addresses[0].port if self._addresses else 0

    @property
    def stats(self) -> ServerStats:
        with self._lock:
            return self._tally.snapshot()

    def is_serving(self) -> bool:
        return not self._closing

    def close(self) -> None:
        with self._lock:
            if self._closing:
                closing_here = False
            else:
                self._closing = closing_here = True
        if closing_here:
            self._wake()
        if threading.current_thread() is not self._acceptor:
            self._acceptor.join()

    def shutdown(self, grace: float = DEFAULT_GRACE) -> None:
        grace = rules.check_grace(grace)
        with self._shutdown_lock:
            if self._done.is_set():
                return
            self.close()
            deadline = time.monotonic() + grace
            with self._lock:
                while self._tally.active and not self._aborted:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._changed.wait(min(remaining, _POLL))
            self._close_connections()
            self._wait_handlers()
            os.close(self._wake_r)
            os.close(self._wake_w)
            log.info(rules.LOG_STOPPED, self._names, self.stats.summary())
            self._done.set()

    def serve_forever(self, grace: float = DEFAULT_GRACE) -> None:
        self._run_until_stopped(rules.check_grace(grace), escalate=True)

    # -- waiting for the end ---------------------------------------------------------------

    def _run_until_stopped(self, grace: float, *, escalate: bool) -> None:
        """``serve_forever``; ``escalate=False`` (a worker): every signal is a graceful stop."""
        signals = 0

        def on_signal(signum: int, frame: FrameType | None) -> None:
            nonlocal signals
            signals += 1
            self._stop_requested = True
            if signals > 1 and escalate:
                self._abort()

        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, on_signal)
        try:
            while not self._done.wait(_POLL):
                if self._stop_requested:
                    self.shutdown(grace)
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _request_stop(self) -> None:
        """A worker's parent asked for a graceful stop (taken up by the waiting loop)."""
        self._stop_requested = True

    def _abort(self) -> None:
        """Close everything now: a second signal (or the parent's ABORT)."""
        self._stop_requested = True
        self._aborted = True  # read by shutdown's waiting loop within _POLL s

    def _close_connections(self) -> None:
        with self._lock:
            self._conns_closed = True
            conns = list(self._conns)
        for conn in conns:
            conn.close()  # wakes the handler's waiting call with SocketClosedError

    def _wait_handlers(self) -> None:
        deadline = time.monotonic() + rules.HANDLER_END_WAIT
        with self._lock:
            while self._tally.active and time.monotonic() < deadline:
                self._changed.wait(_POLL)
            left = self._tally.active
        if left:
            log.warning(rules.LOG_HANDLERS_LEFT, left)

    # -- accepting ------------------------------------------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (already awake) or closed
            os.write(self._wake_w, b"x")

    def _accept_loop(self) -> None:
        listeners = {sock.fileno(): sock for sock in self._listeners}
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        watching = False
        backoff = AcceptBackoff()
        resume_at = 0.0
        try:
            while not self._closing:
                now = time.monotonic()
                with self._lock:
                    room = self._tally.has_room()
                backing_off = now < resume_at
                want = room and not backing_off
                if want != watching:  # at the limit or backing off: leave clients queued
                    for fd in listeners:
                        if want:
                            poller.register(fd, select.POLLIN)
                        else:
                            poller.unregister(fd)
                    watching = want
                timeout = math.ceil((resume_at - now) * 1000) if backing_off else None
                for fd, _ in poller.poll(timeout):
                    if fd == self._wake_r:
                        with contextlib.suppress(BlockingIOError):
                            os.read(self._wake_r, 512)
                        continue
                    try:
                        delay = self._accept_from(listeners[fd], backoff)
                    except Exception:  # a bug must not end the accept thread
                        log.exception("accept on %s: unexpected error", describe(listeners[fd]))
                        delay = rules.ACCEPT_BACKOFF_MAX
                    if delay is None:  # the listener is gone
                        poller.unregister(fd)
                        del listeners[fd]
                    elif delay:
                        resume_at = time.monotonic() + delay
                if not listeners:
                    break
        finally:
            for sock in self._listeners:
                sock.close()

    def _accept_from(self, listener: socket.socket, backoff: AcceptBackoff) -> float | None:
        """Accept a batch; the back-off pause, 0, or ``None`` when the listener is gone."""
        for _ in range(_ACCEPT_BATCH):
            try:
                native, sockaddr = listener.accept()
            except BlockingIOError:
                return 0.0
            except OSError as exc:
                with self._lock:
                    self._tally.accept_errors += 1
                failure = backoff.failed(exc, time.monotonic(), describe(listener))
                if failure.warning:
                    log.warning(failure.warning)
                if failure.action is AcceptAction.STOP:
                    return None
                if failure.action is AcceptAction.BACK_OFF:
                    return failure.delay
                continue
            backoff.succeeded()
            if _was_reset(native):
                native.close()
                with self._lock:
                    self._tally.accept_errors += 1
                continue
            with self._lock:
                full = self._tally.opened()
            try:
                threading.Thread(
                    target=self._serve_connection,
                    args=(native, format_endpoint(sockaddr), time.monotonic()),
                    name=f"twinsock-conn {format_endpoint(sockaddr)}",
                    daemon=True,
                ).start()
            except RuntimeError as exc:  # no thread to be had: a shortage, like EMFILE
                native.close()
                self._finished(0, 0)
                failure = backoff.failed(OSError(errno.ENOMEM, f"cannot start a thread: {exc}"),
                                         time.monotonic(), describe(listener))
                if failure.warning:
                    log.warning(failure.warning)
                return failure.delay
            if full:
                return 0.0
        return 0.0

    # -- one connection ---------------------------------------------------------------------------

    def _serve_connection(self, native: socket.socket, peer: str, started: float) -> None:
        conn: Socket | None = None
        try:
            if native.family in (socket.AF_INET, socket.AF_INET6):
                native.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Socket.from_native(native)
            conn.default_timeout = self._options.call_timeout
            with self._lock:
                late = self._conns_closed  # shutdown closed the others already
                if not late:
                    self._conns.add(conn)
            if late:
                return
            if self._options.ssl_context is not None and not self._handshake(conn, peer):
                return
            self._handler(conn)
        except BaseException as exc:
            self._handler_failed(exc, peer)
        finally:
            received = sent = 0
            try:
                if conn is not None:
                    received, sent = conn.bytes_received, conn.bytes_sent
                    conn.close()
                else:
                    native.close()
            finally:  # the slot is given back whatever happens
                self._finished(received, sent, conn)
            if log.isEnabledFor(logging.DEBUG):
                log.debug(rules.LOG_CONNECTION, peer, time.monotonic() - started, received, sent)

    def _handshake(self, conn: Socket, peer: str) -> bool:
        context: SslContext = self._options.ssl_context
        try:
            wrap_connected_socket(
                context, conn, HandshakeType.SERVER, timeout=self._options.handshake_timeout
            )
        except (OSError, ValueError) as exc:
            with self._lock:
                self._tally.handshake_failures += 1
            log.debug(rules.LOG_HANDSHAKE_FAILED, peer, exc)
            return False
        return True

    def _handler_failed(self, exc: BaseException, peer: str) -> None:
        with self._lock:
            self._tally.handler_errors += 1
        level = rules.handler_error_level(exc)
        if level >= logging.ERROR:
            log.error(rules.LOG_HANDLER_RAISED, peer, type(exc).__name__, exc_info=exc)
        elif log.isEnabledFor(level):
            log.log(level, rules.LOG_HANDLER_RAISED, peer, f"{type(exc).__name__}: {exc}")

    def _finished(self, received: int, sent: int, conn: Socket | None = None) -> None:
        with self._lock:
            resume = self._tally.finished(received, sent)
            if conn is not None:
                self._conns.discard(conn)
            self._changed.notify_all()
        if resume and not self._closing:
            self._wake()


def _was_reset(native: socket.socket) -> bool:
    """True for an accepted connection its client already reset."""
    from twinsock._core.flags import is_disconnection_error
    from twinsock._core.types import DEFAULT_FLAGS

    code = native.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    return code != 0 and is_disconnection_error(DEFAULT_FLAGS, code)


@shared_doc(FUNCTIONS, "serve", BLOCKING)
def serve(
    handler: Callable[[Socket], object],
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    backlog: int = 1024,
    sock: socket.socket | Socket | int | None = None,
    ssl_context: SslContext | None = None,
    handshake_timeout: float = 10.0,
    max_connections: int = 10_000,
    call_timeout: float | None = None,
    reuse_port: bool = False,
) -> Server:
    rules.check_handler(handler, coroutine=False)
    checked_host = rules.check_host(host)
    port = check_port(port)
    options = rules.check_serve_options(
        backlog=backlog,
        sock=sock,
        ssl_context=ssl_context,
        handshake_timeout=handshake_timeout,
        max_connections=max_connections,
        call_timeout=call_timeout,
        reuse_port=reuse_port,
    )
    return Server(handler, listeners_for(checked_host, port, options), options)
