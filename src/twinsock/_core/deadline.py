"""Deadlines: one time limit for a whole call, however many waits it makes.

A call first turns its ``timeout`` argument into seconds or ``None`` (no
limit): ``None`` stands for the socket's ``default_timeout``, ``math.inf``
for no limit, and a value beyond ``MAX_TIMEOUT`` is clamped to it (the
longest wait ``poll`` takes), so no wait ever overflows.  Bad values are
refused before the call does anything else.  A ``Deadline`` is created when
the call first has to wait.  Each wait asks ``remaining()``; when it reaches
zero the shell raises ``error()``, a ``NetTimeout`` naming the operation.
``timeout=0`` means "do not wait": the call still takes what is already
available, then times out.
"""

from __future__ import annotations

import math
import time

from twinsock.errors import NetTimeout

__all__ = [
    "CLOSE_FLUSH_LIMIT",
    "HANDSHAKE_TIMEOUT",
    "MAX_TIMEOUT",
    "Deadline",
    "accept_handshake_deadline",
    "check_timeout",
    "is_valid_timeout",
]

#: The longest time limit a call keeps (seconds, about 24.8 days): ``poll``
#: takes at most 2**31 - 1 milliseconds.  Larger finite timeouts are clamped to
#: it; ``math.inf`` means no limit.
MAX_TIMEOUT = float((2**31 - 1) // 1000)


def check_timeout(timeout: float | None) -> float | None:
    """A ``timeout`` argument as seconds, or ``None`` for no limit.

    ``None`` and ``math.inf`` give ``None``; finite values above
    ``MAX_TIMEOUT`` are clamped to it.

    Raises:
        TypeError: not a number (``bool`` included).
        ValueError: negative or NaN.
    """
    if timeout is None:
        return None
    if timeout.__class__ is not float:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"timeout must be a number of seconds or None, not {timeout!r}")
        try:
            timeout = float(timeout)
        except OverflowError:  # an int too large for a float: clamped like any huge value
            timeout = math.inf
    if not timeout >= 0.0:  # NaN compares false
        raise ValueError(f"timeout must be >= 0 seconds or None, not {timeout!r}")
    if timeout > MAX_TIMEOUT:
        return None if timeout == math.inf else MAX_TIMEOUT
    return timeout


def is_valid_timeout(timeout: object) -> bool:
    """True for a float ``check_timeout`` accepts, decided cheaply.

    The shells' fast lanes (a read the buffer answers at once, no wait) ask
    ``timeout is None or is_valid_timeout(timeout)``; anything else takes the
    slow path, which checks the timeout before anything else.  A float that
    only fails this test (an ``int``, say) is still valid there.
    """
    return timeout.__class__ is float and timeout >= 0.0  # type: ignore[operator,unused-ignore]


class Deadline:
    """The moment a call must give up, measured on the monotonic clock."""

    __slots__ = ("_expires", "operation", "timeout")

    def __init__(self, timeout: float | None, operation: str) -> None:
        self.timeout = check_timeout(timeout)  # a checked value passes unchanged
        self.operation = operation
        self._expires = None if self.timeout is None else time.monotonic() + self.timeout

    @classmethod
    def forever(cls, operation: str) -> Deadline:
        """A shared deadline without a limit (calls without a timeout skip the clock)."""
        deadline = _FOREVER.get(operation)
        if deadline is None:
            deadline = _FOREVER[operation] = cls(None, operation)
        return deadline

    def remaining(self) -> float | None:
        """Seconds left (never negative), or ``None`` for no limit."""
        if self._expires is None:
            return None
        return max(0.0, self._expires - time.monotonic())

    def expired(self) -> bool:
        """True once the time is up (never for ``timeout=None``)."""
        return self._expires is not None and time.monotonic() >= self._expires

    def error(self, where: str = "") -> NetTimeout:
        """The ``NetTimeout`` to raise on expiry.

        ``recv_line timed out after 0.3 s``, or with ``where`` (the endpoints):
        ``recv_line 127.0.0.1:5000 -> 127.0.0.1:41234: timed out after 0.3 s``.
        """
        where = f" {where}:" if where else ""
        return NetTimeout(f"{self.operation}{where} timed out after {self.timeout:g} s")


_FOREVER: dict[str, Deadline] = {}


#: How long ``accept`` on a TLS listener gives one client to finish its handshake
#: (seconds, both socket kinds).  A module setting: assign a new value to change
#: it for handshakes that start afterwards.
HANDSHAKE_TIMEOUT = 10.0

#: How long a closed connection may keep writing what was queued before it was
#: closed (and a TLS close_notify) to a peer that does not read (seconds); then
#: the connection is aborted, so a peer cannot keep a closed socket's fd and
#: loop registration alive.
CLOSE_FLUSH_LIMIT = 1.0


def accept_handshake_deadline(accept_deadline: Deadline) -> Deadline:
    """The deadline of one accepted client's handshake (both socket kinds and the servers).

    ``HANDSHAKE_TIMEOUT`` (read at each call, so it can be configured), but
    never past the deadline of the ``accept`` call itself.
    """
    remaining = accept_deadline.remaining()
    limit = HANDSHAKE_TIMEOUT if remaining is None else min(HANDSHAKE_TIMEOUT, remaining)
    return Deadline(limit, "TLS handshake")
