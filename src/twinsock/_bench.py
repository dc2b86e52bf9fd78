"""``twinsock bench``: the line echo benchmark, twinsock against asyncio streams.

How this works.  Each server runs in its own process (``twinsock bench
--serve NAME``, which prints ``LISTENING <port>``), so the two servers never
share an interpreter with each other or with the load.  The load is a
pure-Python client in this process: ``connections`` asyncio connections,
each with one line in flight (send a line, wait for its echo, send the
next), on uvloop when it is installed.  A short warm-up is not counted;
then every echo's round trip is recorded for ``seconds``.  The table gives
requests per second, the median and 99th-percentile latency, and each
server's throughput as a multiple of asyncio streams'.

A Python client is slower than a fast server, so the figures say how the
servers compare under the same light load, not what they can take at most;
``bench/`` has a C load generator for that.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

__all__ = ["Result", "run", "serve"]

HOST = "127.0.0.1"
WARMUP = 0.3
START_TIMEOUT = 20.0

#: (``--serve`` name, the name in the table), asyncio first: it is the baseline.
SERVERS = [("asyncio", "asyncio streams"), ("twinsock", "twinsock AsyncSocket")]


# -- the servers (run in child processes) ---------------------------------------------


def _announce(port: int) -> None:
    sys.stdout.write(f"LISTENING {port}\n")
    sys.stdout.flush()


async def serve(name: str) -> None:
    """Run the echo server ``name`` (``"twinsock"`` or ``"asyncio"``) on a free port."""
    if name == "twinsock":
        from twinsock import asyncnet

        async def echo_twinsock(conn: asyncnet.AsyncSocket) -> None:
            while line := await conn.recv_line():  # the line goes back as it came
                await conn.send((b"" if line == b"\r\n" else line) + b"\n")

        twinsock_server = await asyncnet.serve(echo_twinsock, HOST, 0, backlog=4096)
        _announce(twinsock_server.port)
        try:
            await asyncio.Event().wait()  # until cancelled (SIGTERM)
        finally:
            await twinsock_server.shutdown(0)
        return

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write(line)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(echo, HOST, 0, backlog=4096)
    _announce(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


# -- the load ---------------------------------------------------------------------------


@dataclass
class Result:
    """One server's figures (``error`` set when it could not be measured)."""

    name: str
    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, share: float) -> float:
        """Latency in milliseconds below which ``share`` of the requests finished."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, int(share * len(ordered)))
        return ordered[index] * 1000.0


class _Load:
    """The shared state of one run: whether to record, and what was recorded."""

    def __init__(self) -> None:
        self.recording = False
        self.running = True
        self.latencies: list[float] = []


class _EchoClient(asyncio.Protocol):
    """One connection with one line in flight; records each round trip."""

    def __init__(self, line: bytes, load: _Load, done: asyncio.Future[None]) -> None:
        self.line = line
        self.load = load
        self.done = done
        self.pending = 0
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self.sent_at = time.perf_counter()
        self.transport.write(self.line)

    def data_received(self, data: bytes) -> None:
        self.pending += len(data)
        if self.pending < len(self.line):
            return
        self.pending -= len(self.line)
        if self.load.recording:
            self.load.latencies.append(time.perf_counter() - self.sent_at)
        if self.load.running:
            self._send()
        elif not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            if exc is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(exc)


async def _measure(
    name: str, port: int, seconds: float, connections: int, size: int, progress: TextIO
) -> Result:
    loop = asyncio.get_running_loop()
    line = b"x" * (size - 1) + b"\n"
    load = _Load()
    finished: list[asyncio.Future[None]] = []
    transports = []
    result = Result(name)
    try:
        for _ in range(connections):
            done: asyncio.Future[None] = loop.create_future()
            transport, _protocol = await loop.create_connection(
                lambda done=done: _EchoClient(line, load, done), HOST, port  # type: ignore[misc]
            )
            transports.append(transport)
            finished.append(done)
        await asyncio.sleep(WARMUP)
        load.recording = True
        start = time.perf_counter()
        tty = progress.isatty()
        while (elapsed := time.perf_counter() - start) < seconds:
            await asyncio.sleep(min(0.25, seconds - elapsed))
            if tty:
                elapsed = time.perf_counter() - start
                rate = len(load.latencies) / elapsed if elapsed else 0.0
                progress.write(f"\r  {name:<22} {elapsed:5.1f}/{seconds:.1f} s {rate:12,.0f} req/s")
                progress.flush()
        load.recording = False
        result.seconds = time.perf_counter() - start
        load.running = False
        result.latencies = load.latencies
        result.requests = len(load.latencies)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*finished, return_exceptions=True), 5.0)
    finally:
        for transport in transports:
            transport.close()
        await asyncio.sleep(0)  # let the loop really close them before the server stops
    return result


def _start_server(name: str, use_uvloop: bool) -> tuple[subprocess.Popen[str], int]:
    command = [sys.executable, "-m", "twinsock", "bench", "--serve", name]
    if use_uvloop:
        command.append("--uvloop")
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    assert proc.stdout is not None
    first = proc.stdout.readline().split()
    if len(first) == 2 and first[0] == "LISTENING":
        return proc, int(first[1])
    _stop(proc)
    reason = (proc.stderr.read() if proc.stderr else "").strip().splitlines()
    raise RuntimeError(reason[-1] if reason else f"the server exited with {proc.returncode}")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _client_loop() -> tuple[str, asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:
        return "asyncio", asyncio.new_event_loop()
    return "uvloop", uvloop.new_event_loop()


def run(*, seconds: float, connections: int, size: int, use_uvloop: bool) -> int:
    """Benchmark both servers and print the table; return the exit status."""
    progress = sys.stderr
    loop_name, loop = _client_loop()
    results = []
    try:
        for serve_name, name in SERVERS:
            progress.write(f"  {name:<22} starting\n" if not progress.isatty() else "")
            try:
                proc, port = _start_server(serve_name, use_uvloop)
            except (RuntimeError, OSError) as exc:
                results.append(Result(name, error=str(exc)))
                continue
            try:
                result = loop.run_until_complete(
                    _measure(name, port, seconds, connections, size, progress)
                )
            except OSError as exc:
                result = Result(name, error=str(exc))
            finally:
                _stop(proc)
            results.append(result)
            if progress.isatty():
                progress.write("\n")
            else:
                progress.write(f"  {name:<22} done: {result.rate:,.0f} req/s\n")
            progress.flush()
    finally:
        loop.close()
    _print_table(results, seconds, connections, size, use_uvloop, loop_name)
    return 1 if any(r.error for r in results) else 0


def _print_table(
    results: list[Result],
    seconds: float,
    connections: int,
    size: int,
    use_uvloop: bool,
    client_loop: str,
) -> None:
    server_loop = "uvloop" if use_uvloop else "asyncio"
    out = sys.stdout
    out.write(
        f"line echo, {connections} connections, {size}-byte lines, {seconds:g} s per server; "
        f"servers on {server_loop}\n"
        f"client: Python ({client_loop}) in this process, one line in flight per "
        "connection;\n"
        "        it is slower than a fast server: see bench/ for the C load generator\n\n"
    )
    base = results[0].rate if results and not results[0].error else 0.0
    out.write(f"{'server':<22} {'requests/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>7}\n")
    for r in results:
        if r.error:
            out.write(f"{r.name:<22} not available: {r.error}\n")
            continue
        ratio = f"{r.rate / base:6.2f}x" if base else "     -"
        out.write(
            f"{r.name:<22} {r.rate:12,.0f} {r.percentile(0.5):8.3f} "
            f"{r.percentile(0.99):8.3f} {ratio:>7}\n"
        )
    out.flush()
