"""``run_server``'s many-process mode: fork workers, supervise them, add up their counters.

How this works.  ``supervise`` forks ``count`` worker processes before the
caller has any event loop or thread, and each runs ``worker_main`` (a shell's
"serve on my own ``SO_REUSEPORT`` listener until told to stop").  The parent
serves nothing; it sleeps in ``select`` on a self-pipe that
``signal.set_wakeup_fd`` writes to on SIGINT, SIGTERM and SIGCHLD, and:

* reaps a worker that died and starts a new one in its place, at most one
  start a second per worker, so a worker that crashes at once cannot spin;
* on the first SIGINT/SIGTERM writes ``STOP`` down every worker's control
  pipe (a graceful shutdown), on a second one ``ABORT``.  Workers react to a
  signal of their own only with a graceful shutdown (a terminal's Ctrl-C or
  systemd's SIGTERM reaches every process of the group, and that must not
  count as the second, aborting, signal), and the end of their control pipe
  (the parent died) stops them too;
* collects each worker's final ``ServerStats``, which the worker writes as
  one JSON line to a pipe of its own before it exits, and returns their sum.

A worker that is still running ``KILL_AFTER`` seconds after its grace period
ended is killed (SIGKILL); its counters are lost.  This module imports no
event loop: the async shell's ``worker_main`` starts one in the child.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from twinsock._core.serving import ServeOptions, ServerStats, stats_from_mapping, sum_stats
from twinsock._listeners import check_reuse_port, describe, open_listeners

__all__ = [
    "ABORT",
    "KILL_AFTER",
    "RESTART_INTERVAL",
    "STOP",
    "check_fork",
    "control_action",
    "run_workers",
    "supervise",
]

#: A worker is started at most once per this many seconds (per worker slot).
RESTART_INTERVAL = 1.0
#: Seconds past the grace period after which a worker that has not ended is killed.
KILL_AFTER = 5.0
#: Control-pipe messages from the parent: shut down gracefully / close everything now.
STOP = b"s"
ABORT = b"x"

log = logging.getLogger("twinsock.server")

#: ``worker_main(control_fd)``: serve until the control pipe or a signal says
#: stop, return the final counters.
WorkerMain = Callable[[int], ServerStats]


def check_fork() -> None:
    """Raise ``ValueError`` where ``run_server`` cannot fork workers."""
    if not hasattr(os, "fork"):
        raise ValueError("workers > 1 needs os.fork, which this platform does not have")
    if not hasattr(signal, "SIGCHLD"):
        raise ValueError("workers > 1 needs SIGCHLD, which this platform does not have")


def control_action(data: bytes) -> bytes:
    """What a worker does with what it read from its control pipe.

    ``ABORT`` anywhere in ``data`` means abort; anything else, including the
    end of the pipe (``b""``: the parent is gone), means a graceful stop.
    """
    return ABORT if ABORT in data else STOP


@dataclasses.dataclass
class _Worker:
    """One worker slot: the process that fills it now and its pipes."""

    index: int
    pid: int = 0
    started: float = -RESTART_INTERVAL
    control: int = -1  # the parent's write end
    report: int = -1  # the parent's read end of the stats pipe
    restart_at: float | None = None

    def close_pipes(self) -> None:
        for fd in (self.control, self.report):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.control = self.report = -1


class _Supervisor:
    def __init__(
        self,
        worker_main: WorkerMain,
        count: int,
        grace: float,
        close_in_child: Sequence[socket.socket],
    ) -> None:
        self.worker_main = worker_main
        self.grace = grace
        self.close_in_child = close_in_child
        self.workers = [_Worker(i) for i in range(count)]
        self.reports: list[ServerStats] = []
        self.signals: list[int] = []
        self.stop_requests = 0
        self.kill_at: float | None = None
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)

    # -- the parent's loop -------------------------------------------------------------

    def run(self) -> ServerStats:
        for worker in self.workers:
            self.start(worker)
        while True:
            self.handle_signals()
            self.reap()
            now = time.monotonic()
            if self.stop_requests:
                if not any(w.pid for w in self.workers):
                    break
                if self.kill_at is not None and now >= self.kill_at:
                    self.kill_remaining()
            else:
                for worker in self.workers:
                    if worker.restart_at is not None and now >= worker.restart_at:
                        self.start(worker)
            self.wait(self.next_timeout(now))
        return sum_stats(self.reports)

    def next_timeout(self, now: float) -> float | None:
        moments = [w.restart_at for w in self.workers if w.restart_at is not None]
        if self.stop_requests:
            moments = [] if self.kill_at is None else [self.kill_at]
        return max(0.0, min(moments) - now) if moments else None

    def wait(self, timeout: float | None) -> None:
        with contextlib.suppress(InterruptedError):
            select.select([self.wake_r], [], [], timeout)
        with contextlib.suppress(BlockingIOError):
            while os.read(self.wake_r, 512):
                pass

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum != signal.SIGCHLD:
            self.signals.append(signum)

    def handle_signals(self) -> None:
        while self.signals:
            signum = self.signals.pop(0)
            self.stop_requests += 1
            first = self.stop_requests == 1
            log.info(
                "%s: %s %d workers",
                signal.Signals(signum).name,
                "stopping" if first else "closing everything in",
                sum(1 for w in self.workers if w.pid),
            )
            if first and self.grace != float("inf"):
                self.kill_at = time.monotonic() + self.grace + KILL_AFTER
            for worker in self.workers:
                worker.restart_at = None
                if worker.pid:
                    with contextlib.suppress(OSError):
                        os.write(worker.control, STOP if first else ABORT)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = next((w for w in self.workers if w.pid == pid), None)
            if worker is None:
                continue  # not ours (a caller's child): nothing to do
            self.collect(worker)
            worker.pid = 0
            code = os.waitstatus_to_exitcode(status)
            if self.stop_requests:
                log.debug("worker %d (pid %d) ended with status %d", worker.index, pid, code)
                continue
            worker.restart_at = max(time.monotonic(), worker.started + RESTART_INTERVAL)
            log.warning(
                "worker %d (pid %d) ended with status %d; starting a new one", worker.index, pid,
                code,
            )

    def collect(self, worker: _Worker) -> None:
        """Read the stats report of a worker that ended (nothing if it was killed)."""
        chunks = []
        with contextlib.suppress(OSError):
            while chunk := os.read(worker.report, 65536):
                chunks.append(chunk)
        worker.close_pipes()
        data = b"".join(chunks).strip()
        if not data:
            return
        try:
            self.reports.append(stats_from_mapping(json.loads(data)))
        except ValueError as exc:
            log.warning("worker %d sent an unreadable report: %s", worker.index, exc)

    def kill_remaining(self) -> None:
        for worker in self.workers:
            if worker.pid:
                log.warning(
                    "worker %d (pid %d) still runs %g s after the grace period: killing it",
                    worker.index, worker.pid, KILL_AFTER,
                )
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)
        self.kill_at = None

    def terminate_all(self) -> None:
        """After an error in the parent itself: end the workers and reap them."""
        for worker in self.workers:
            if worker.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(worker.pid, 0)
                worker.pid = 0
            worker.close_pipes()

    # -- starting a worker ------------------------------------------------------------------

    def start(self, worker: _Worker) -> None:
        control_r, control_w = os.pipe()
        report_r, report_w = os.pipe()
        worker.restart_at = None
        worker.started = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the child never returns from here
            os.close(control_w)
            os.close(report_r)
            self.child(worker.index, control_r, report_w)
        os.close(control_r)
        os.close(report_w)
        os.set_blocking(report_r, False)
        worker.pid, worker.control, worker.report = pid, control_w, report_r
        log.debug("worker %d started (pid %d)", worker.index, pid)

    def child(self, index: int, control: int, report: int) -> None:
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
                signal.signal(signum, signal.SIG_DFL)
            # What belongs to the parent or to the other workers.
            for fd in (self.wake_r, self.wake_w):
                os.close(fd)
            for other in self.workers:
                other.close_pipes()
            for sock in self.close_in_child:
                sock.close()
            stats = self.worker_main(control)
            os.write(report, json.dumps(dataclasses.asdict(stats)).encode() + b"\n")
            code = 0
        except BaseException:
            log.exception("worker %d failed", index)
        finally:
            with contextlib.suppress(BaseException):
                for handler in logging.getLogger().handlers + log.handlers:
                    handler.flush()
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)


def supervise(
    worker_main: WorkerMain,
    count: int,
    grace: float,
    *,
    close_in_child: Sequence[socket.socket] = (),
) -> ServerStats:
    """Run ``worker_main`` in ``count`` forked processes until SIGINT/SIGTERM.

    Args:
        worker_main: runs in each worker with its control pipe's read end (see
            ``control_action``) and returns the worker's final counters.
        count: how many workers run at once.
        grace: the workers' grace period; a worker still running
            ``KILL_AFTER`` seconds after it is killed.
        close_in_child: sockets of the parent that workers must not keep.

    Returns:
        The sum of every worker's final counters (restarted ones included).

    Raises:
        RuntimeError: not called from the main thread (signals need it).
    """
    check_fork()
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("run_server with workers must be called from the main thread")
    supervisor = _Supervisor(worker_main, count, grace, close_in_child)
    previous: dict[int, Any] = {}
    old_wakeup = -1
    try:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
            previous[signum] = signal.signal(signum, supervisor.on_signal)
        old_wakeup = signal.set_wakeup_fd(supervisor.wake_w)
        return supervisor.run()
    except BaseException:
        supervisor.terminate_all()
        raise
    finally:
        signal.set_wakeup_fd(old_wakeup)
        for number, handler in previous.items():
            signal.signal(number, handler)
        os.close(supervisor.wake_r)
        os.close(supervisor.wake_w)


def run_workers(
    worker_main: Callable[[int, int], ServerStats],
    host: str | None,
    port: int,
    count: int,
    grace: float,
    options: ServeOptions,
) -> ServerStats:
    """``run_server`` with ``workers > 1``: reserve the port, fork, supervise.

    Args:
        worker_main: ``worker_main(port, control_fd)`` serves in a worker on
            its own ``SO_REUSEPORT`` listener of ``port`` (or on the inherited
            ``sock=`` listener) and returns its final counters.
        host, port: where to serve; port 0 is resolved here, once, so every
            worker gets the same port.
        count, grace: how many workers; their grace period.
        options: ``serve``'s checked options.

    Returns:
        The sum of every worker's final counters.

    Raises:
        ValueError: no fork or no ``SO_REUSEPORT`` here.
        OSError: the address cannot be bound (the message names it).
    """
    check_fork()
    reserved: list[socket.socket] = []
    if options.sock is None:
        check_reuse_port()
        # Bound, never listening: it holds the port (and picks it for port 0)
        # but the kernel hands it no connection.
        reserved = open_listeners(host, port, backlog=0, reuse_port=True, listen=False)
        port = reserved[0].getsockname()[1]
        where = ", ".join(describe(sock) for sock in reserved)
    else:
        where = "the given socket"
    log.info("serving %s with %d worker processes (supervisor pid %d)", where, count, os.getpid())
    try:
        stats = supervise(
            lambda control: worker_main(port, control), count, grace, close_in_child=reserved
        )
    finally:
        for sock in reserved:
            sock.close()
    log.info("stopped serving %s: %s", where, stats.summary())
    return stats
