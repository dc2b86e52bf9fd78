"""A child Python process whose output lines a test reads with a deadline.

The serving tests run servers and supervisors in child processes (signals,
fork and descriptor limits must not touch the test runner).  ``Child`` starts
``python -c SCRIPT`` (or ``python -m MODULE``, for the command line) with the
test's environment (``PYTHONPATH`` included) or the one it is given,
collects stdout and stderr lines in reader threads, and lets the test wait
for a line that matches, bounded in time (each line matches at most once).
The process is killed on exit if it is still running.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from types import TracebackType


class Child:
    """``python -c script`` (or ``python -m module``) with its output lines queued as they come."""

    def __init__(
        self,
        script: str = "",
        *,
        args: Sequence[str] = (),
        module: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        head = ["-c", script] if module is None else ["-m", module]
        self.proc = subprocess.Popen(
            [sys.executable, *head, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ if env is None else env),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.pending: list[str] = []  # read, not matched yet
        for stream in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.put(line.rstrip("\n"))

    def expect(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """The first line not matched before that ``pattern`` finds, within ``timeout`` seconds.

        Lines that an earlier ``expect`` passed over stay candidates: stdout and
        stderr are read by two threads, so their lines may arrive out of order.
        """
        regex = re.compile(pattern)
        for i, line in enumerate(self.pending):
            match = regex.search(line)
            if match:
                del self.pending[i]
                return match
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise AssertionError(
                    f"no line matching {pattern!r} within {timeout} s; output:\n"
                    + "\n".join(self.seen)
                )
            try:
                line = self.lines.get(timeout=min(remaining, 0.2))
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    time.sleep(0.1)  # let the readers hand over the last lines
                    if self.lines.empty():
                        raise AssertionError(
                            f"the process ended ({self.proc.returncode}) before a line matching "
                            f"{pattern!r}; output:\n" + "\n".join(self.seen)
                        ) from None
                continue
            self.seen.append(line)
            match = regex.search(line)
            if match:
                return match
            self.pending.append(line)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 10.0) -> int:
        """The exit status, waiting at most ``timeout`` seconds."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"the process did not end within {timeout} s; output:\n" + "\n".join(self.seen)
            ) from None

    def output(self) -> str:
        """Every line read so far plus what is still queued."""
        while True:
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                return "\n".join(self.seen)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def __enter__(self) -> Child:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
