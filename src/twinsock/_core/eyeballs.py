"""Happy Eyeballs (RFC 8305) decisions, without doing any I/O.

How this works.  ``interleave`` orders resolved addresses so that families
alternate, starting with the family the resolver put first (RFC 8305
section 4).  ``Attempts`` then tells a shell what to do next: start the next
attempt now, or wait until a given moment for the ones in flight.  The next
attempt starts ``delay`` seconds (250 ms by default) after the previous one
started, or at once when every attempt in flight has failed.  The first
connection wins; the shell closes the others.  Every failure is recorded with
its address and elapsed time so the final error can carry one note per
attempt.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["ATTEMPT_DELAY", "Attempts", "Failure", "interleave"]

#: RFC 8305's recommended "Connection Attempt Delay".
ATTEMPT_DELAY = 0.25

T = TypeVar("T")


def interleave(targets: Sequence[tuple[int, T]]) -> list[tuple[int, T]]:
    """Order ``(family, target)`` pairs so that address families alternate."""
    by_family: dict[int, list[tuple[int, T]]] = {}
    for item in targets:
        by_family.setdefault(item[0], []).append(item)
    queues = list(by_family.values())
    ordered: list[tuple[int, T]] = []
    while queues:
        for queue in queues:
            ordered.append(queue.pop(0))
        queues = [q for q in queues if q]
    return ordered


@dataclass
class Failure(Generic[T]):
    """One failed attempt: where, why, and when (seconds since the start)."""

    target: T
    error: BaseException
    elapsed: float


@dataclass
class Attempts(Generic[T]):
    """The schedule of connection attempts for one ``dial``."""

    targets: list[T]
    delay: float = ATTEMPT_DELAY
    started_at: float = field(default_factory=time.monotonic)
    failures: list[Failure[T]] = field(default_factory=list)
    in_flight: int = 0
    _next: int = 0
    _next_start: float = 0.0

    def next_target(self, now: float) -> T | None:
        """The target to start now, or ``None`` if none should start yet."""
        if self._next >= len(self.targets):
            return None
        if self.in_flight and now < self._next_start:
            return None
        target = self.targets[self._next]
        self._next += 1
        self.in_flight += 1
        self._next_start = now + self.delay
        return target

    def wait_until(self) -> float | None:
        """When the next attempt is due (``None``: nothing left to start)."""
        if self._next >= len(self.targets):
            return None
        return self._next_start

    def wait_time(self, now: float, limit: float | None) -> float | None:
        """How long to wait for the attempts in flight before the next one is due,
        at most ``limit`` seconds (``None``: no limit)."""
        due = self.wait_until()
        wait = None if due is None else max(0.0, due - now)
        if limit is not None:
            wait = limit if wait is None else min(wait, limit)
        return wait

    def failed(self, target: T, error: BaseException, now: float) -> None:
        """Record a failed attempt; the next one may start at once."""
        self.in_flight -= 1
        self.failures.append(Failure(target, error, now - self.started_at))
        if not self.in_flight:
            self._next_start = now

    def exhausted(self) -> bool:
        """True when every attempt was made and none is still in flight."""
        return self._next >= len(self.targets) and not self.in_flight

    def timed_out(self, error: BaseException, unanswered: Sequence[T]) -> BaseException:
        """``error`` (the deadline's) with one note per attempt, answered or not."""
        for failure in self.failures:
            error.add_note(
                f"attempt to {failure.target} failed after {failure.elapsed:.3f} s: "
                f"{failure.error!r}"
            )
        for target in unanswered:
            error.add_note(f"attempt to {target} did not answer")
        return error

    def final_error(self, describe: str) -> BaseException:
        """The last attempt's error, with one note per attempt (SPEC section 0)."""
        if not self.failures:
            return OSError(f"{describe}: no address to connect to")
        error = self.failures[-1].error
        for failure in self.failures:
            error.add_note(
                f"{describe}: attempt to {failure.target} failed after "
                f"{failure.elapsed:.3f} s: {failure.error!r}"
            )
        return error
