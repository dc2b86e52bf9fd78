"""The rules of serving (SPEC section 10) that both server shells share.

How this works.  A server shell (``_blocking.server`` with a thread per
connection, ``_async.server`` with a task per connection) owns the waiting;
everything it decides comes from here, so both decide alike:

* ``check_serve_options`` validates ``serve``'s keyword options once, before
  any socket exists, and ``check_grace`` / ``check_workers`` the rest.
* ``Tally`` holds the counters behind ``ServerStats`` and the connection
  limit: ``opened()`` answers whether the accept loop must stop accepting (the
  limit is reached; clients then wait in the kernel's backlog), ``finished()``
  whether it may accept again.  Nothing is ever accepted and then dropped.
* ``AcceptBackoff`` turns one failed ``accept`` into an action: skip a
  connection that died before it was accepted, back off (5 ms doubling up to
  1 s) when the process or the system is out of descriptors or memory, or stop
  because the listener itself was closed; and it allows at most one warning a
  second, saying how many failures it kept quiet.
* ``handler_error_level`` says how loudly an exception escaping a handler is
  logged: the ordinary ends of a connection (a reset peer, a timeout, a line
  too long, a socket closed by shutdown) at DEBUG, anything else at ERROR.

Nothing here touches a socket, a thread or an event loop; the tests drive it
with plain values and an explicit clock.
"""

from __future__ import annotations

import dataclasses
import enum
import errno
import inspect
import logging
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from twinsock._core.flags import is_disconnection_error
from twinsock._core.targets import reject_malformed_ip
from twinsock._core.tls_engine import TruncatedStream
from twinsock._core.types import DEFAULT_FLAGS
from twinsock.addresses import is_ip_address
from twinsock.errors import LineTooLong, NetTimeout, SocketClosedError

__all__ = [
    "ACCEPT_BACKOFF_FIRST",
    "ACCEPT_BACKOFF_MAX",
    "BACKOFF_ERRNOS",
    "DEFAULT_GRACE",
    "HANDLER_END_WAIT",
    "LOG_CONNECTION",
    "LOG_HANDLERS_LEFT",
    "LOG_HANDLER_RAISED",
    "LOG_HANDSHAKE_FAILED",
    "LOG_LISTENING",
    "LOG_STOPPED",
    "WARNING_INTERVAL",
    "AcceptAction",
    "AcceptBackoff",
    "AcceptFailure",
    "ServeOptions",
    "ServerStats",
    "Tally",
    "check_grace",
    "check_handler",
    "check_host",
    "check_serve_options",
    "check_workers",
    "classify_accept_error",
    "handler_error_level",
    "stats_from_mapping",
    "sum_stats",
]

#: The first pause after ``accept`` ran out of descriptors or memory; each
#: further failure doubles it up to ``ACCEPT_BACKOFF_MAX``.  5 ms lets a few
#: connections close before the next try without a visible stall.
ACCEPT_BACKOFF_FIRST = 0.005
#: The longest pause between two ``accept`` attempts while resources are short.
ACCEPT_BACKOFF_MAX = 1.0
#: At most one accept warning per this many seconds (the others are counted).
WARNING_INTERVAL = 1.0
#: ``shutdown``'s and ``serve_forever``'s default grace period, in seconds.
DEFAULT_GRACE = 10.0
#: After ``shutdown`` closed the connections that outlived the grace period,
#: how long it waits for their handlers to end before it returns anyway (a
#: thread that ignores ``SocketClosedError`` cannot be stopped; it is left
#: running, and logged).
HANDLER_END_WAIT = 1.0

# The log lines of SPEC section 10, the same text from both shells (lazy
# %-formatting: a DEBUG line costs nothing when DEBUG is off).
LOG_LISTENING = "listening on %s"
LOG_STOPPED = "stopped serving %s: %s"
LOG_CONNECTION = "%s: closed after %.3f s, %d bytes in, %d bytes out"
LOG_HANDSHAKE_FAILED = "%s: TLS handshake failed: %s"
LOG_HANDLER_RAISED = "%s: the handler raised %s"
LOG_HANDLERS_LEFT = "shutdown: %d handlers still run after their connections were closed"

#: ``accept`` failed for want of descriptors, buffers or memory: back off and
#: keep serving the open connections, whose closing frees what is missing.
BACKOFF_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

# A pending connection that failed before it was accepted.  Linux reports the
# new connection's network errors from accept(2) and its manual asks callers
# to retry at once (accept(2), "Error handling"); EPERM is a firewall refusal.
_SKIP_ERRNOS = frozenset(
    code
    for code in (
        errno.ECONNABORTED,
        errno.ECONNRESET,
        errno.EPROTO,
        errno.EPERM,
        errno.ENETDOWN,
        errno.ENOPROTOOPT,
        errno.EHOSTDOWN,
        getattr(errno, "ENONET", None),
        errno.EHOSTUNREACH,
        errno.EOPNOTSUPP,
        errno.ENETUNREACH,
        errno.ETIMEDOUT,
        errno.EINTR,
        errno.EAGAIN,
    )
    if code is not None
)

# The listener itself is gone (closed by ``close()`` while accepting).
_STOP_ERRNOS = frozenset({errno.EBADF, errno.ENOTSOCK, errno.EINVAL})

# What ends a connection in the ordinary course of things: logged at DEBUG.
_QUIET_ERRORS = (NetTimeout, LineTooLong, SocketClosedError, TruncatedStream)


@dataclass(frozen=True)
class ServerStats:
    """A snapshot of a server's counters (``Server.stats``, ``run_server``'s result)."""

    #: Connections accepted so far.
    accepted: int = 0
    #: Connections open now (handshaking or in the handler).
    active: int = 0
    #: Connections closed so far.
    closed: int = 0
    #: TLS handshakes that failed or timed out.
    handshake_failures: int = 0
    #: Handlers that raised (any exception, quiet ones too).
    handler_errors: int = 0
    #: ``accept`` calls that failed (skipped or backed off).
    accept_errors: int = 0
    #: Application bytes received on closed connections.
    bytes_received: int = 0
    #: Application bytes sent on closed connections.
    bytes_sent: int = 0

    def summary(self) -> str:
        """Every counter on one line, for the log.

        Returns:
            ``"accepted=3 active=0 closed=3 ..."``, each counter as ``name=value``.
        """
        return " ".join(f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self))


_STAT_NAMES = tuple(f.name for f in dataclasses.fields(ServerStats))


def sum_stats(parts: Iterable[ServerStats]) -> ServerStats:
    """The counters of several servers (``run_server``'s workers) added up."""
    totals = dict.fromkeys(_STAT_NAMES, 0)
    for part in parts:
        for name in _STAT_NAMES:
            totals[name] += getattr(part, name)
    return ServerStats(**totals)


def stats_from_mapping(data: Mapping[str, Any]) -> ServerStats:
    """Rebuild ``ServerStats`` from ``dataclasses.asdict`` output (a worker's report).

    Raises:
        ValueError: a counter is missing or is not a non-negative int.
    """
    values = {}
    for name in _STAT_NAMES:
        value = data.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"worker report: {name} must be an int >= 0, not {value!r}")
        values[name] = value
    return ServerStats(**values)


class Tally:
    """The live counters of one server and its connection limit.

    The blocking shell calls it under a lock (connection threads finish
    concurrently); the async shell from its event loop.
    """

    __slots__ = (
        "accept_errors",
        "accepted",
        "active",
        "bytes_received",
        "bytes_sent",
        "closed",
        "handler_errors",
        "handshake_failures",
        "max_connections",
    )

    def __init__(self, max_connections: int) -> None:
        self.max_connections = max_connections
        self.accepted = 0
        self.active = 0
        self.closed = 0
        self.handshake_failures = 0
        self.handler_errors = 0
        self.accept_errors = 0
        self.bytes_received = 0
        self.bytes_sent = 0

    def has_room(self) -> bool:
        """True while one more connection may be accepted."""
        return self.active < self.max_connections

    def opened(self) -> bool:
        """Count an accepted connection; True when the limit is now reached (stop accepting)."""
        self.accepted += 1
        self.active += 1
        return self.active >= self.max_connections

    def finished(self, received: int, sent: int) -> bool:
        """Count a closed connection and its bytes; True when accepting may resume."""
        self.active -= 1
        self.closed += 1
        self.bytes_received += received
        self.bytes_sent += sent
        return self.active == self.max_connections - 1

    def snapshot(self) -> ServerStats:
        """The counters now, as an immutable ``ServerStats``."""
        return ServerStats(
            accepted=self.accepted,
            active=self.active,
            closed=self.closed,
            handshake_failures=self.handshake_failures,
            handler_errors=self.handler_errors,
            accept_errors=self.accept_errors,
            bytes_received=self.bytes_received,
            bytes_sent=self.bytes_sent,
        )


class AcceptAction(enum.Enum):
    """What the accept loop does after ``accept`` failed."""

    #: The connection died before it was accepted: accept the next one at once.
    SKIP = "skip"
    #: Out of descriptors or memory (or an unexpected error): pause, then retry.
    BACK_OFF = "back_off"
    #: The listener was closed: this listener's loop ends.
    STOP = "stop"


@dataclass(frozen=True)
class AcceptFailure:
    """``AcceptBackoff.failed``'s answer.

    Attributes:
        action: what to do next.
        delay: seconds to pause before the next ``accept`` (``BACK_OFF`` only).
        warning: the text to log at WARNING now, or ``None`` (rate limited).
    """

    action: AcceptAction
    delay: float = 0.0
    warning: str | None = None


def classify_accept_error(exc: OSError) -> AcceptAction:
    """Skip, back off or stop, for one ``OSError`` raised by ``accept``."""
    code = exc.errno
    if code in BACKOFF_ERRNOS:
        return AcceptAction.BACK_OFF
    if code in _SKIP_ERRNOS or (code is None and is_disconnection_error(DEFAULT_FLAGS, exc)):
        return AcceptAction.SKIP
    if code in _STOP_ERRNOS:
        return AcceptAction.STOP
    # Unknown trouble: never stop serving for it, but never spin on it either.
    return AcceptAction.BACK_OFF


class AcceptBackoff:
    """The back-off schedule and warning rate of one server's accept loop."""

    __slots__ = ("_last_warning", "_quiet", "delay")

    def __init__(self) -> None:
        #: The pause after the latest failure (0 after a success).
        self.delay = 0.0
        self._last_warning: float | None = None
        self._quiet = 0

    def succeeded(self) -> None:
        """An ``accept`` worked: the next shortage starts again at 5 ms."""
        self.delay = 0.0

    def failed(self, exc: OSError, now: float, where: str = "") -> AcceptFailure:
        """Decide about one failed ``accept`` on listener ``where`` at time ``now``.

        Args:
            exc: what ``accept`` raised.
            now: the monotonic clock, in seconds.
            where: the listener's address, for the warning text.

        Returns:
            The action, the pause for ``BACK_OFF``, and a warning to log (at
            most one per ``WARNING_INTERVAL``; the suppressed ones are counted
            in the next).
        """
        action = classify_accept_error(exc)
        if action is not AcceptAction.BACK_OFF:
            return AcceptFailure(action)
        self.delay = (
            ACCEPT_BACKOFF_FIRST if self.delay == 0 else min(2 * self.delay, ACCEPT_BACKOFF_MAX)
        )
        if self._last_warning is not None and now - self._last_warning < WARNING_INTERVAL:
            self._quiet += 1
            return AcceptFailure(action, self.delay)
        place = f" on {where}" if where else ""
        text = f"accept{place} failed: {exc}; retrying in {self.delay:g} s"
        if self._quiet:
            text += f" ({self._quiet} more failures since the last warning)"
        self._last_warning = now
        self._quiet = 0
        return AcceptFailure(action, self.delay, text)


def handler_error_level(exc: BaseException) -> int:
    """``logging.DEBUG`` for the ordinary end of a connection, else ``logging.ERROR``.

    Ordinary: a disconnection error (``is_disconnection_error``), ``NetTimeout``,
    ``LineTooLong``, ``SocketClosedError`` (what ``shutdown`` wakes calls with)
    or a TLS stream the peer ended without close_notify (most TLS clients do).
    """
    if isinstance(exc, _QUIET_ERRORS):
        return logging.DEBUG
    if isinstance(exc, OSError) and is_disconnection_error(DEFAULT_FLAGS, exc):
        return logging.DEBUG
    return logging.ERROR


# -- argument checks -----------------------------------------------------------------


@dataclass(frozen=True)
class ServeOptions:
    """``serve``'s keyword options, checked (see ``check_serve_options``)."""

    backlog: int = 1024
    sock: Any = None  # socket.socket | a twinsock socket | a file descriptor
    ssl_context: Any = None  # twinsock.tls.SslContext; Any keeps tls out of the core
    handshake_timeout: float = 10.0
    max_connections: int = 10_000
    call_timeout: float | None = None
    reuse_port: bool = False


def _seconds(value: Any, name: str, *, allow_none: bool) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        what = "a number of seconds or None" if allow_none else "a number of seconds"
        raise TypeError(f"{name} must be {what}, not {value!r}")
    if math.isnan(value) or value < 0:
        raise ValueError(f"{name} must be >= 0 seconds, not {value!r}")
    return float(value)


def _int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, not {value}")
    return int(value)


def check_handler(handler: Any, *, coroutine: bool) -> None:
    """A handler is callable; the async server's is a coroutine function.

    Raises:
        TypeError: ``handler`` does not fit, named in the message.
    """
    if not callable(handler):
        raise TypeError(f"handler must be callable, not {handler!r}")
    if coroutine and not (
        inspect.iscoroutinefunction(handler)
        or inspect.iscoroutinefunction(getattr(handler, "__call__", None))  # noqa: B004
    ):
        raise TypeError(
            f"handler must be a coroutine function (async def) for asyncnet.serve, not {handler!r}"
        )
    if not coroutine and inspect.iscoroutinefunction(handler):
        raise TypeError(
            f"handler must be a plain function for net.serve (use asyncnet.serve for async def),"
            f" not {handler!r}"
        )


def check_grace(grace: Any) -> float:
    """A grace period: a finite or infinite number of seconds >= 0.

    Raises:
        TypeError: not a number.  ValueError: negative or NaN.
    """
    value = _seconds(grace, "grace", allow_none=False)
    assert value is not None
    return value


def check_workers(workers: Any) -> int:
    """``run_server``'s ``workers``: an int >= 0; 0 means one per CPU.

    Raises:
        TypeError: not an int.  ValueError: negative.
    """
    count = _int(workers, "workers", 0)
    return count or (os.cpu_count() or 1)


def check_host(host: Any) -> str | None:
    """``serve``'s ``host``: ``None`` (``""`` too) for every interface, else the text.

    Raises:
        TypeError: not a ``str`` or ``None``.
        AddressError: text that can only be meant as an IP address but is not one.
    """
    if host is None or host == "":
        return None
    if not isinstance(host, str):
        raise TypeError(f"host must be a str or None, not {type(host).__name__}")
    if not is_ip_address(host):
        reject_malformed_ip(host)
    return host


def check_serve_options(
    *,
    backlog: Any = 1024,
    sock: Any = None,
    ssl_context: Any = None,
    handshake_timeout: Any = 10.0,
    max_connections: Any = 10_000,
    call_timeout: Any = None,
    reuse_port: Any = False,
) -> ServeOptions:
    """Check ``serve``'s keyword options before any socket is made.

    ``sock`` is passed through: the listener module adopts it (and checks it)
    when the server is made.

    Raises:
        TypeError: an option of the wrong type.
        ValueError: ``max_connections < 1``, a negative or NaN timeout.
    """
    from twinsock.tls import SslContext

    if ssl_context is not None and not isinstance(ssl_context, SslContext):
        raise TypeError(f"ssl_context must be a twinsock SslContext or None, not {ssl_context!r}")
    if not isinstance(reuse_port, bool):
        raise TypeError(f"reuse_port must be a bool, not {reuse_port!r}")
    handshake = _seconds(handshake_timeout, "handshake_timeout", allow_none=False)
    assert handshake is not None
    return ServeOptions(
        backlog=_int(backlog, "backlog", 0),
        sock=sock,
        ssl_context=ssl_context,
        handshake_timeout=handshake,
        max_connections=_int(max_connections, "max_connections", 1),
        call_timeout=_seconds(call_timeout, "call_timeout", allow_none=True),
        reuse_port=reuse_port,
    )

