"""The attempt loops both shells run, decided without I/O.

How this works.  A shell that must try something until it works asks this
module what each outcome means and only does the waiting itself:

* ``InTurn``: ``connect`` and ``send_to`` try each resolved address one
  after another.  The shell iterates over the targets, reports each failure
  with ``failed`` and, when none worked, raises ``error()``: the last
  attempt's ``OSError`` with one note per attempt (SPEC section 0).  A
  timeout ends the attempts at once, since one deadline covers them all, and
  so does ``close()``.
* ``connect_step``: what a non-blocking ``connect`` (or the ``SO_ERROR`` read
  after waiting) says: connected, wait until writable, or, for a Unix
  listener whose backlog is full, try again shortly (Linux offers nothing to
  wait on for that: a full backlog answers ``EAGAIN`` and a poll on the
  unconnected socket returns at once).
* ``skip_accept_error`` / ``skip_accepted``: with ``SAFE_DISCONN`` a client
  that reset its connection before ``accept`` returned it is skipped.
"""

from __future__ import annotations

import enum
import errno
import math
import os
import socket
import time
from collections.abc import Iterator, Sequence
from typing import Any

from twinsock._core.eyeballs import Attempts
from twinsock._core.flags import is_disconnection_error, is_safe
from twinsock._core.targets import format_endpoint
from twinsock._core.types import DEFAULT_FLAGS, SocketFlag
from twinsock.errors import NetTimeout, SocketClosedError

__all__ = [
    "UNIX_BACKLOG_RETRY",
    "ConnectStep",
    "InTurn",
    "connect_step",
    "skip_accept_error",
    "skip_accepted",
]

#: How often a connect to a Unix listener whose backlog is full tries again.
UNIX_BACKLOG_RETRY = 0.01

_IN_PROGRESS = frozenset({errno.EINPROGRESS, errno.EALREADY, errno.EINTR})


class InTurn:
    """Targets tried one after another until one works (``connect``, ``send_to``).

    Args:
        targets: ``(family, sockaddr)`` pairs, in the order to try them.
        describe: what the final error's notes start with (``connect example.com``).
    """

    def __init__(self, targets: Sequence[tuple[int, Any]], describe: str) -> None:
        self._sockaddrs = [sockaddr for _family, sockaddr in targets]
        # No delay: the next attempt starts only when the previous one failed.
        self._attempts: Attempts[str] = Attempts(
            [format_endpoint(s) for s in self._sockaddrs], delay=math.inf
        )
        self._describe = describe
        self._current = ""

    def __iter__(self) -> Iterator[Any]:
        """Each target's sockaddr, in turn."""
        for sockaddr in self._sockaddrs:
            self._current = format_endpoint(sockaddr)
            self._attempts.next_target(time.monotonic())
            yield sockaddr

    def failed(self, error: OSError) -> None:
        """Record that the current target failed with ``error``.

        Raises:
            NetTimeout: ``error`` itself when it is the deadline's, with one
                note per attempt: no other attempt may start.
            SocketClosedError: ``error`` itself: the socket was closed.
        """
        if isinstance(error, NetTimeout):
            raise self._attempts.timed_out(error, [self._current])
        if isinstance(error, SocketClosedError):
            raise error
        self._attempts.failed(self._current, error, time.monotonic())

    def error(self) -> BaseException:
        """The error to raise when every target failed (the last one's, with notes)."""
        return self._attempts.final_error(self._describe)


class ConnectStep(enum.Enum):
    """What a shell does after a non-blocking ``connect`` returned a code."""

    DONE = "connected"
    WAIT = "wait until writable, then read SO_ERROR"
    RETRY = "try again after UNIX_BACKLOG_RETRY seconds"


def connect_step(code: int, family: int, target: Any) -> ConnectStep:
    """The meaning of ``connect_ex``'s result, or of ``SO_ERROR`` after a wait.

    Raises:
        OSError: the connection failed (``ConnectionRefusedError``, ...), with
            the target in the message.
    """
    if code == 0 or code == errno.EISCONN:
        return ConnectStep.DONE
    if code in _IN_PROGRESS:
        return ConnectStep.WAIT
    if code == errno.EAGAIN and family == socket.AF_UNIX:
        return ConnectStep.RETRY
    raise OSError(code, f"{os.strerror(code)} (connecting to {format_endpoint(target)})")


def skip_accept_error(flags: SocketFlag, error: OSError) -> bool:
    """True if ``accept`` should skip ``error`` and wait for the next client."""
    return is_safe(flags) and is_disconnection_error(DEFAULT_FLAGS, error)


def skip_accepted(flags: SocketFlag, so_error: int) -> bool:
    """True for an accepted connection its client already reset (its ``SO_ERROR``)."""
    return so_error != 0 and is_safe(flags) and is_disconnection_error(DEFAULT_FLAGS, so_error)
