"""Real peers for the TLS tests: the ``openssl`` binary as a server or client.

``s_server`` starts ``openssl s_server`` for one connection on a free
loopback port and waits until it listens; ``s_client`` starts
``openssl s_client``.  Both drain the process's output in threads (a full
pipe never stalls the peer) and kill it, by its own pid, when the test ends.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

OPENSSL = shutil.which("openssl")


class Openssl:
    """One ``openssl`` process with piped stdio; killed (by pid) on ``stop``."""

    def __init__(self, args: list[str]) -> None:
        assert OPENSSL is not None
        self.process = subprocess.Popen(
            [OPENSSL, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.stdout = bytearray()
        self.stderr = bytearray()
        self._lock = threading.Lock()
        self._readers = [
            threading.Thread(
                target=self._drain, args=(self.process.stdout, self.stdout), daemon=True
            ),
            threading.Thread(
                target=self._drain, args=(self.process.stderr, self.stderr), daemon=True
            ),
        ]
        for reader in self._readers:
            reader.start()

    def _drain(self, pipe: Any, target: bytearray) -> None:
        for _ in range(1_000_000):
            chunk = pipe.read1(65536)
            if not chunk:
                return
            with self._lock:
                target.extend(chunk)

    def output(self) -> tuple[bytes, bytes]:
        with self._lock:
            return bytes(self.stdout), bytes(self.stderr)

    def wait_for(self, predicate: Callable[[bytes], bool], timeout: float = 10) -> bytes:
        """Poll stdout until ``predicate`` holds; return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out, _ = self.output()
            if predicate(out):
                return out
            time.sleep(0.01)
        out, err = self.output()
        raise AssertionError(f"openssl output never matched: stdout={out!r} stderr={err!r}")

    def write(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def close_stdin(self) -> None:
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):
            self.process.stdin.close()

    def wait(self, timeout: float = 10) -> int:
        code = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(timeout)
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self.close_stdin()
        for reader in self._readers:
            reader.join(10)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def is_listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port`` (read from /proc, no connection)."""
    with open("/proc/net/tcp", encoding="ascii") as table:
        for row in table.readlines()[1:]:
            fields = row.split()
            local, state = fields[1], fields[3]
            if state == "0A" and int(local.split(":")[1], 16) == port:
                return True
    return False


@contextlib.contextmanager
def s_server(*args: str, quiet: bool = True) -> Iterator[tuple[Openssl, int]]:
    """``openssl s_server -quiet`` for one connection; yields it and its port.

    With ``-quiet`` the client's bytes appear on stdout exactly as sent, and
    what the test writes to stdin goes to the client; stdin's end makes it
    close the connection with close_notify.  Without it, stdout also reports
    how the connection ended: ``DONE`` after the client's close_notify,
    ``ERROR`` after a truncated stream.
    """
    quiet_args = ["-quiet"] if quiet else []
    for _attempt in range(5):
        port = free_port()
        server = Openssl(
            ["s_server", "-accept", f"127.0.0.1:{port}", "-naccept", "1", *quiet_args, *args]
        )
        try:
            for _ in range(500):
                if is_listening(port) or server.process.poll() is not None:
                    break
                time.sleep(0.01)
            if server.process.poll() is None and is_listening(port):
                yield server, port
                return
        finally:
            server.stop()
    raise AssertionError(f"s_server did not start: {server.output()!r}")


@contextlib.contextmanager
def s_client(port: int, *args: str) -> Iterator[Openssl]:
    client = Openssl(["s_client", "-connect", f"127.0.0.1:{port}", *args])
    try:
        yield client
    finally:
        client.stop()
