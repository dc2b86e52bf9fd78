"""run_server's supervisor alone (``twinsock._workers``), with a trivial worker.

Each test runs a small supervisor script in a child process (fork and
signal handlers must not touch the test runner).  Its workers print their
pid, wait on their control pipe, print what it said, and report made-up
counters, so the tests see starts, restarts, signals and the summed result.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from proc_lines import Child

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

SCRIPT = r"""
import logging, os, sys, time
from twinsock import _workers
from twinsock._core.serving import ServerStats

logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(levelname)s %(message)s")
mode = sys.argv[1]
_workers.KILL_AFTER = 0.5

def say(text):
    os.write(1, (text + "\n").encode())  # one write: lines of two workers never mix

def worker(control):
    say(f"started {os.getpid()} parent {os.getppid()}")
    if mode == "crash":
        raise RuntimeError("worker crashes at once")
    first = _workers.control_action(os.read(control, 16))
    say(f"control {os.getpid()} {first!r}")
    aborted = 0
    if mode == "two-signals":
        aborted = int(_workers.control_action(os.read(control, 16)) == _workers.ABORT)
        say(f"control {os.getpid()} abort={aborted}")
    if mode == "stubborn":
        time.sleep(60)
    return ServerStats(accepted=1, closed=1, bytes_received=10, bytes_sent=aborted)

stats = _workers.supervise(worker, int(sys.argv[2]), grace=float(sys.argv[3]))
say(f"parent {os.getpid()} done {stats.accepted} {stats.closed} {stats.bytes_received} "
    f"{stats.bytes_sent}")
"""


def start(child: Child, count: int) -> list[int]:
    pids = []
    for _ in range(count):
        match = child.expect(r"^started (\d+) parent (\d+)")
        assert int(match.group(2)) == child.proc.pid
        pids.append(int(match.group(1)))
    assert len(set(pids)) == count and child.proc.pid not in pids
    return pids


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_workers_stop_on_a_signal_and_their_counters_are_summed(signum: int) -> None:
    with Child(SCRIPT, args=["plain", "2", "5"]) as child:
        start(child, 2)
        child.signal(signum)
        child.expect(r"^control \d+ b's'")
        child.expect(r"^control \d+ b's'")
        child.expect(r"^parent \d+ done 2 2 20 0$")
        assert child.wait() == 0


def test_a_second_signal_aborts() -> None:
    with Child(SCRIPT, args=["two-signals", "2", "5"]) as child:
        start(child, 2)
        child.signal(signal.SIGTERM)
        child.expect(r"^control \d+ b's'")
        child.expect(r"^control \d+ b's'")
        child.signal(signal.SIGINT)
        child.expect(r"^parent \d+ done 2 2 20 2$")  # both saw ABORT
        assert child.wait() == 0


def test_a_dead_worker_is_replaced() -> None:
    with Child(SCRIPT, args=["plain", "2", "5"]) as child:
        first, second = start(child, 2)
        os.kill(first, signal.SIGKILL)
        child.expect(rf"WARNING worker \d \(pid {first}\) ended with status -9")
        (replacement,) = start(child, 1)
        assert replacement not in (first, second)
        child.signal(signal.SIGTERM)
        # The killed worker reported nothing: two reports, from the living ones.
        child.expect(r"^parent \d+ done 2 2 20 0$")
        assert child.wait() == 0


def test_a_crashing_worker_is_restarted_at_most_once_a_second() -> None:
    with Child(SCRIPT, args=["crash", "1", "5"]) as child:
        began = time.monotonic()
        start(child, 1)
        starts = 1
        while time.monotonic() - began < 3.0:
            start(child, 1)
            starts += 1
        elapsed = time.monotonic() - began
        child.signal(signal.SIGTERM)
        child.expect(r"^parent \d+ done 0 0 0 0$")
        assert child.wait() == 0
    # One start at once, then at most one per second: never more than elapsed + 1.
    assert 3 <= starts <= elapsed + 1.5, (starts, elapsed)
    assert "RuntimeError: worker crashes at once" in child.output()


def test_a_worker_that_ignores_stop_is_killed_after_the_grace_period() -> None:
    with Child(SCRIPT, args=["stubborn", "1", "0.5"]) as child:
        start(child, 1)
        began = time.monotonic()
        child.signal(signal.SIGTERM)
        child.expect(r"still runs 0.5 s after the grace period: killing it")
        child.expect(r"^parent \d+ done 0 0 0 0$")
        assert child.wait() == 0
        assert time.monotonic() - began < 5.0


def test_workers_end_when_the_supervisor_dies() -> None:
    with Child(SCRIPT, args=["plain", "2", "5"]) as child:
        pids = start(child, 2)
        child.kill()
        # The end of the control pipe tells the workers to stop.
        deadline = time.monotonic() + 5.0
        alive = list(pids)
        while alive and time.monotonic() < deadline:
            alive = [pid for pid in alive if _exists(pid)]
            time.sleep(0.05)
        assert not alive


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (reaped by init later) has finished too.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except OSError:
        return False
