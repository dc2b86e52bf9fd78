"""The serving rules alone, with no sockets: limits, back-off, counters, checks.

Everything both server shells decide comes from ``twinsock._core.serving``;
these tests drive it with plain values and an explicit clock.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import itertools
import logging
import math
import os
from typing import Any

import pytest

from twinsock._core.serving import (
    ACCEPT_BACKOFF_FIRST,
    ACCEPT_BACKOFF_MAX,
    AcceptAction,
    AcceptBackoff,
    ServerStats,
    Tally,
    check_grace,
    check_handler,
    check_host,
    check_serve_options,
    check_workers,
    classify_accept_error,
    handler_error_level,
    stats_from_mapping,
    sum_stats,
)
from twinsock.errors import AddressError, LineTooLong, NetTimeout, SocketClosedError

# -- the connection limit and the counters ------------------------------------------------


def test_tally_stops_accepting_at_the_limit_and_resumes_below_it() -> None:
    tally = Tally(max_connections=2)
    assert tally.has_room()
    assert tally.opened() is False
    assert tally.opened() is True  # the second reaches the limit: stop accepting
    assert not tally.has_room()
    assert tally.finished(10, 20) is True  # back under the limit: accept again
    assert tally.has_room()
    assert tally.finished(1, 2) is False  # was not at the limit: nothing to resume
    stats = tally.snapshot()
    assert stats == ServerStats(accepted=2, active=0, closed=2, bytes_received=11, bytes_sent=22)


def test_tally_limit_of_one() -> None:
    tally = Tally(max_connections=1)
    assert tally.opened() is True
    assert tally.finished(0, 0) is True
    assert tally.opened() is True


def test_stats_are_a_frozen_snapshot() -> None:
    tally = Tally(10)
    tally.opened()
    before = tally.snapshot()
    tally.handshake_failures += 1
    tally.handler_errors += 2
    tally.accept_errors += 3
    assert before.handshake_failures == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        before.accepted = 5  # type: ignore[misc]
    after = tally.snapshot()
    assert (after.handshake_failures, after.handler_errors, after.accept_errors) == (1, 2, 3)
    assert after.summary().startswith("accepted=1 active=1 closed=0 handshake_failures=1")


def test_stats_sum_and_round_trip() -> None:
    one = ServerStats(1, 0, 1, 0, 1, 2, 100, 200)
    two = ServerStats(3, 1, 2, 1, 0, 0, 5, 6)
    assert sum_stats([one, two]) == ServerStats(4, 1, 3, 1, 1, 2, 105, 206)
    assert sum_stats([]) == ServerStats()
    assert stats_from_mapping(dataclasses.asdict(two)) == two
    with pytest.raises(ValueError, match="bytes_sent"):
        stats_from_mapping({**dataclasses.asdict(two), "bytes_sent": -1})
    with pytest.raises(ValueError, match="accepted"):
        stats_from_mapping({"active": 0})


# -- accept errors -------------------------------------------------------------------------


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM])
def test_resource_shortage_backs_off(code: int) -> None:
    assert classify_accept_error(OSError(code, os.strerror(code))) is AcceptAction.BACK_OFF


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionAbortedError(errno.ECONNABORTED, "aborted"),
        ConnectionResetError(errno.ECONNRESET, "reset"),
        OSError(errno.EPROTO, "protocol error"),
        OSError(errno.EPERM, "firewall"),
        OSError(errno.ENETUNREACH, "unreachable"),
        ConnectionResetError("no errno, counted by its type"),
    ],
)
def test_a_connection_that_died_before_accept_is_skipped(exc: OSError) -> None:
    assert classify_accept_error(exc) is AcceptAction.SKIP


@pytest.mark.parametrize("code", [errno.EBADF, errno.ENOTSOCK, errno.EINVAL])
def test_a_closed_listener_stops_its_loop(code: int) -> None:
    assert classify_accept_error(OSError(code, os.strerror(code))) is AcceptAction.STOP


def test_an_unknown_accept_error_backs_off_instead_of_stopping() -> None:
    assert classify_accept_error(OSError(errno.EIO, "I/O error")) is AcceptAction.BACK_OFF


def test_backoff_doubles_from_5_ms_to_1_s_and_resets_after_a_success() -> None:
    backoff = AcceptBackoff()
    emfile = OSError(errno.EMFILE, "Too many open files")
    delays = [backoff.failed(emfile, now=0.0).delay for _ in range(12)]
    assert delays[0] == ACCEPT_BACKOFF_FIRST == 0.005
    assert delays[:4] == [0.005, 0.01, 0.02, 0.04]
    assert all(b == min(2 * a, 1.0) for a, b in itertools.pairwise(delays))
    assert delays[-1] == ACCEPT_BACKOFF_MAX == 1.0
    backoff.succeeded()
    assert backoff.failed(emfile, now=0.0).delay == 0.005


def test_skipped_errors_do_not_grow_the_backoff() -> None:
    backoff = AcceptBackoff()
    reset = ConnectionAbortedError(errno.ECONNABORTED, "aborted")
    failure = backoff.failed(reset, now=0.0)
    assert failure.action is AcceptAction.SKIP
    assert failure.delay == 0 and failure.warning is None
    assert backoff.delay == 0


def test_at_most_one_warning_a_second_counting_the_quiet_ones() -> None:
    backoff = AcceptBackoff()
    emfile = OSError(errno.EMFILE, "Too many open files")
    first = backoff.failed(emfile, now=100.0, where="127.0.0.1:8000")
    assert first.warning is not None
    assert "127.0.0.1:8000" in first.warning and "Too many open files" in first.warning
    assert "0.005 s" in first.warning
    quiet = [backoff.failed(emfile, now=100.0 + i / 10).warning for i in range(1, 10)]
    assert quiet == [None] * 9
    second = backoff.failed(emfile, now=101.0)
    assert second.warning is not None and "9 more failures" in second.warning
    assert backoff.failed(emfile, now=101.5).warning is None


# -- handler exceptions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionResetError(errno.ECONNRESET, "reset"),
        BrokenPipeError(errno.EPIPE, "broken pipe"),
        ConnectionAbortedError("aborted, no errno"),
        NetTimeout("recv_line timed out after 1 s"),
        LineTooLong(100),
        SocketClosedError("recv_line"),
    ],
)
def test_ordinary_connection_ends_are_logged_at_debug(exc: BaseException) -> None:
    assert handler_error_level(exc) == logging.DEBUG


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bug"),
        RuntimeError("bug"),
        KeyError("bug"),
        OSError(errno.ENOENT, "No such file"),
        ConnectionRefusedError(errno.ECONNREFUSED, "a handler's own outgoing connect"),
    ],
)
def test_other_handler_exceptions_are_logged_at_error(exc: BaseException) -> None:
    assert handler_error_level(exc) == logging.ERROR


# -- argument checks ----------------------------------------------------------------------------


def test_serve_option_defaults() -> None:
    options = check_serve_options()
    assert options.backlog == 1024
    assert options.max_connections == 10_000
    assert options.handshake_timeout == 10.0
    assert options.call_timeout is None
    assert options.reuse_port is False
    assert options.sock is None and options.ssl_context is None


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"max_connections": 0}, ValueError, "max_connections"),
        ({"max_connections": 1.5}, TypeError, "max_connections"),
        ({"max_connections": True}, TypeError, "max_connections"),
        ({"backlog": -1}, ValueError, "backlog"),
        ({"backlog": "10"}, TypeError, "backlog"),
        ({"call_timeout": -1}, ValueError, "call_timeout"),
        ({"call_timeout": math.nan}, ValueError, "call_timeout"),
        ({"call_timeout": "5"}, TypeError, "call_timeout"),
        ({"handshake_timeout": -0.5}, ValueError, "handshake_timeout"),
        ({"handshake_timeout": None}, TypeError, "handshake_timeout"),
        ({"reuse_port": 1}, TypeError, "reuse_port"),
        ({"ssl_context": object()}, TypeError, "ssl_context"),
    ],
)
def test_bad_serve_options_raise_naming_the_option(
    kwargs: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        check_serve_options(**kwargs)


def test_handler_checks() -> None:
    def plain(conn: Any) -> None:
        pass

    async def coro(conn: Any) -> None:
        pass

    class AsyncCallable:
        async def __call__(self, conn: Any) -> None:
            pass

    check_handler(plain, coroutine=False)
    check_handler(coro, coroutine=True)
    check_handler(functools.partial(coro), coroutine=True)
    check_handler(AsyncCallable(), coroutine=True)
    with pytest.raises(TypeError, match="callable"):
        check_handler("echo", coroutine=False)
    with pytest.raises(TypeError, match="coroutine function"):
        check_handler(plain, coroutine=True)
    with pytest.raises(TypeError, match=r"asyncnet\.serve"):
        check_handler(coro, coroutine=False)


def test_grace_workers_and_host_checks() -> None:
    assert check_grace(0) == 0.0
    assert check_grace(math.inf) == math.inf
    with pytest.raises(ValueError, match="grace"):
        check_grace(-1)
    with pytest.raises(TypeError, match="grace"):
        check_grace(None)
    assert check_workers(3) == 3
    assert check_workers(0) == (os.cpu_count() or 1)
    with pytest.raises(ValueError, match="workers"):
        check_workers(-1)
    with pytest.raises(TypeError, match="workers"):
        check_workers(2.0)
    assert check_host(None) is None
    assert check_host("") is None
    assert check_host("localhost") == "localhost"
    assert check_host("::1") == "::1"
    with pytest.raises(AddressError, match=r"1\.2\.3\.999"):
        check_host("1.2.3.999")
    with pytest.raises(TypeError, match="host"):
        check_host(b"localhost")
