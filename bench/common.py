"""Shared helpers for the benchmarks: servers in subprocesses, the load generator, tables.

How this works: every server runs in its own process (``servers.py`` for the
Python ones, ``_build/echo_epoll`` for the C ceiling), started on port 0; it
prints ``LISTENING <port>`` when it is ready, which :func:`start_server` waits
for (bounded), or ``UNAVAILABLE <reason>``, which becomes :class:`Unavailable`.
The C load generator (``_build/loadgen``, built on demand by ``_build.py``)
runs in another process and prints one JSON object. With two or more CPUs the
server is pinned to the last CPU and the load generator to the first, so that
they never share a core (``--no-pin`` turns this off); a server whose spec
says ``pinned=False`` (``run_server`` with its workers) is left to the
scheduler. The server's CPU share, which the load generator reads during its
measured window, covers the server process and all its descendants (a
``run_server`` supervisor and its forked workers). Servers are stopped by
their pid only (SIGTERM, then SIGKILL after a grace period). Figures are
printed, never asserted: this machine is shared and noisy, so each benchmark
interleaves its peers round by round and compares them within one run.
While ``run_all.py --json`` records (:func:`recording`), every interleaved
echo group also leaves one result row per peer for the JSON file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from _build import build

BENCH_DIR = Path(__file__).resolve().parent
HOST = "127.0.0.1"
START_TIMEOUT = 15.0


class Unavailable(Exception):
    """The implementation cannot run here (for example twinsock's sockets are not written yet)."""


@dataclass
class Pinning:
    """Which CPU the load generator and the server get (None: no pinning)."""

    client_cpu: int | None
    server_cpu: int | None

    @classmethod
    def choose(cls, enabled: bool) -> Pinning:
        cpus = sorted(os.sched_getaffinity(0))
        if not enabled or len(cpus) < 2:
            return cls(None, None)
        return cls(cpus[0], cpus[-1])


def pin(pid: int, cpu: int | None) -> None:
    if cpu is not None:
        # the process may already be gone; pinning is only a refinement
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, {cpu})


@dataclass
class ServerSpec:
    """One server to benchmark: a label for the tables and how to start it."""

    label: str
    kind: str  # a name from servers.py, or "c_epoll"
    uvloop: bool = False
    extra_args: tuple[str, ...] = ()  # for example ("--cert", F, "--key", F)
    tls: bool = False  # drive it with loadgen_tls
    pinned: bool = True  # False: never pinned (run_server's workers share every CPU)
    listeners: int = 1  # "LISTENING <port>" lines to wait for (one per run_server worker)

    def command(self) -> list[str]:
        if self.kind == "c_epoll":
            return [str(build("echo_epoll")), "0", HOST]
        cmd = [sys.executable, str(BENCH_DIR / "servers.py"), self.kind, "0", *self.extra_args]
        return [*cmd, "--uvloop"] if self.uvloop else cmd


@dataclass
class Server:
    """A running server subprocess."""

    spec: ServerSpec
    proc: subprocess.Popen[bytes]
    port: int
    stderr_file: IO[bytes] = field(repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kib(self) -> int:
        """Resident memory of the server process (VmRSS from /proc/PID/status), in KiB."""
        return proc_status_kib(self.pid, "VmRSS")

    def stderr_tail(self, limit: int = 2000) -> str:
        self.stderr_file.flush()
        self.stderr_file.seek(0)
        return self.stderr_file.read().decode(errors="replace")[-limit:]

    def stop(self) -> None:
        """Stop the server by its pid: SIGTERM, then SIGKILL after 3 s."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=3)
        self.stderr_file.close()


def proc_status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def process_tree(pid: int) -> list[int]:
    """``pid`` and its living descendants (``/proc/PID/task/TID/children``), parents first.

    The same walk as the load generator's server CPU figure (``loadgen.c``).
    """
    found: list[int] = []
    todo = [pid]
    while todo and len(found) < 256:
        current = todo.pop(0)
        found.append(current)
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{tid}/children") as children:
                    todo += [int(child) for child in children.read().split()]
    return found


def _read_line(stream: IO[bytes], deadline: float) -> bytes:
    """One line from a pipe, waiting no later than ``deadline`` (b"" on timeout or EOF)."""
    fd = stream.fileno()
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return b""
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            return b""
        chunk = os.read(fd, 1)
        if not chunk:
            return data
        data += chunk
    return data


def start_server(spec: ServerSpec, cpu: int | None = None) -> Server:
    """Start ``spec`` on a free loopback port and wait until it listens.

    Raises:
        Unavailable: the server reported that it cannot run here.
        RuntimeError: it died or did not listen within START_TIMEOUT seconds.
    """
    # closed by Server.stop(): it lives as long as the server
    stderr_file = tempfile.TemporaryFile()  # noqa: SIM115
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        spec.command(), stdout=subprocess.PIPE, stderr=stderr_file, stdin=subprocess.DEVNULL,
        env=env,
    )
    if spec.pinned:
        pin(proc.pid, cpu)
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    server = Server(spec, proc, 0, stderr_file)
    ports: set[str] = set()
    for _ in range(spec.listeners):
        line = _read_line(proc.stdout, deadline).decode().strip()
        if not line.startswith("LISTENING "):
            break
        ports.add(line.split()[1])
    else:
        if len(ports) == 1:  # every worker on the same port
            server.port = int(ports.pop())
            return server
        line = f"LISTENING on several ports: {sorted(ports)}"
    server.stop()
    if line.startswith("UNAVAILABLE"):
        stderr_file.close()
        raise Unavailable(line.removeprefix("UNAVAILABLE").strip())
    raise RuntimeError(f"{spec.label} did not start: {line!r}\n{server.stderr_tail()}")


@contextmanager
def running(spec: ServerSpec, cpu: int | None = None) -> Iterator[Server]:
    server = start_server(spec, cpu)
    try:
        yield server
    finally:
        server.stop()


def run_loadgen(
    port: int,
    conns: int,
    line_len: int,
    duration: float,
    warmup: float,
    cpu: int | None = None,
    server_pid: int = 0,
    tls: bool = False,
) -> dict[str, Any]:
    """Run the C load generator's echo mode against 127.0.0.1:port; its JSON result.

    With ``server_pid`` the result has ``server_cpu`` (the server's CPU share
    during the measured window) and ``req_per_cpu_s`` (requests per server
    CPU-second).
    """
    mode = [str(build("loadgen_tls"))] if tls else [str(build("loadgen")), "echo"]
    cmd = [*mode, HOST, str(port), str(conns), str(line_len), str(duration), str(warmup),
           str(server_pid)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pin(proc.pid, cpu)
    try:
        out, err = proc.communicate(timeout=duration + warmup + 90)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        raise RuntimeError("loadgen did not finish in time") from None
    if proc.returncode != 0:
        raise RuntimeError(f"loadgen failed ({proc.returncode}): {err.decode()}")
    result: dict[str, Any] = json.loads(out)
    if result.get("server_cpu", -1) > 0:
        result["req_per_cpu_s"] = result["requests_per_s"] / result["server_cpu"]
    return result


def echo_once(
    spec: ServerSpec, conns: int, line_len: int, duration: float, warmup: float, pinning: Pinning
) -> dict[str, Any]:
    """Start a server, drive it with the load generator once, stop it."""
    with running(spec, pinning.server_cpu) as server:
        return run_loadgen(server.port, conns, line_len, duration, warmup, pinning.client_cpu,
                           server.pid, spec.tls)


@dataclass
class Samples:
    """The per-round figures of one peer (empty when it could not run)."""

    label: str
    values: list[float] = field(default_factory=list)
    extra: list[dict[str, Any]] = field(default_factory=list)
    unavailable: str | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    @property
    def best(self) -> float | None:
        return max(self.values) if self.values else None


def interleaved_echo(
    specs: Sequence[ServerSpec],
    conns: int,
    line_len: int,
    duration: float,
    warmup: float,
    rounds: int,
    pinning: Pinning,
) -> dict[str, Samples]:
    """Run every server once per round, peers alternating, ``rounds`` times.

    Returns requests/s samples per label; p50/p99 and errors are kept in ``extra``.
    """
    results = {spec.label: Samples(spec.label) for spec in specs}
    for round_no in range(rounds):
        order = specs if round_no % 2 == 0 else list(reversed(specs))
        for spec in order:
            samples = results[spec.label]
            if samples.unavailable is not None:
                continue
            try:
                res = echo_once(spec, conns, line_len, duration, warmup, pinning)
            except Unavailable as exc:
                samples.unavailable = str(exc) or "not available"
                continue
            samples.values.append(float(res["requests_per_s"]))
            samples.extra.append(res)
            progress(
                f"  round {round_no + 1}/{rounds} {spec.label:<28}"
                f" {res['requests_per_s']:>10.0f} req/s"
                f"  p50 {res['p50_us']:>6.0f} us  p99 {res['p99_us']:>6.0f} us"
                f"  errors {res['errors']}  CPU share: loadgen {res['loadgen_cpu']:.2f}"
                f" server {res['server_cpu']:.2f}"
            )
    record_echo(specs, results, conns, line_len, pinning.server_cpu is not None)
    return results


# -- results for run_all --json -----------------------------------------------------------------

#: Where :func:`record_echo` appends while :func:`recording` is active (else None).
_RECORDS: list[dict[str, Any]] | None = None


@contextmanager
def recording() -> Iterator[list[dict[str, Any]]]:
    """Collect one result row per echo peer that :func:`interleaved_echo` measures."""
    global _RECORDS
    outer, _RECORDS = _RECORDS, []
    try:
        yield _RECORDS
    finally:
        _RECORDS = outer


def _workers(spec: ServerSpec) -> int | None:
    args = list(spec.extra_args)
    if "--workers" in args and args.index("--workers") + 1 < len(args):
        return int(args[args.index("--workers") + 1])
    return None


def record_echo(
    specs: Sequence[ServerSpec], results: dict[str, Samples], conns: int, line_len: int,
    pinned_run: bool = True,
) -> None:
    """One row per peer of an interleaved echo group (nothing unless recording).

    ``loop`` is the group's loop (the C reference server runs in both groups);
    ``workers`` is set when the server was started with ``--workers N``;
    ``server_cpu`` is the server's median CPU share (its process tree: above
    1.0 when several cores served) and ``pinned`` whether it had a CPU to
    itself.
    """
    if _RECORDS is None:
        return
    loop = "uvloop" if any(s.uvloop for s in specs) else "default"
    for spec in specs:
        s = results[spec.label]
        _RECORDS.append({
            "kind": "echo",
            "server": spec.kind,
            "label": spec.label,
            "loop": loop,
            "tls": spec.tls,
            "workers": _workers(spec),
            "conns": conns,
            "line_bytes": line_len,
            "requests_per_s": s.median,
            "samples": s.values,
            "req_per_cpu_s": median_of(s, "req_per_cpu_s"),
            "server_cpu": median_of(s, "server_cpu"),
            "loadgen_cpu": median_of(s, "loadgen_cpu"),
            "pinned": spec.pinned and pinned_run,
            "p50_us": median_of(s, "p50_us"),
            "p99_us": median_of(s, "p99_us"),
            "errors": sum(int(e["errors"]) for e in s.extra),
            "unavailable": s.unavailable,
        })


def median_of(samples: Samples, key: str) -> float | None:
    values = [float(e[key]) for e in samples.extra if key in e]
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}"


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "not available"
    return f"{value:,.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (so it pastes into bench/README.md as is)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def add_common_args(
    parser: argparse.ArgumentParser, duration: float, warmup: float, rounds: int
) -> None:
    parser.add_argument("--duration", type=float, default=duration,
                        help=f"measured seconds per run (default {duration})")
    parser.add_argument("--warmup", type=float, default=warmup,
                        help=f"warm-up seconds per run (default {warmup})")
    parser.add_argument("--rounds", type=int, default=rounds,
                        help=f"interleaved rounds; the median is reported (default {rounds})")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: one short round")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin the server and the load generator to separate CPUs")


def apply_quick(args: argparse.Namespace) -> None:
    if args.quick:
        args.duration = min(args.duration, 0.5)
        args.warmup = min(args.warmup, 0.2)
        args.rounds = 1


def twinsock_available(module: str) -> str | None:
    """None when ``twinsock.<module>`` imports, else the reason it does not."""
    try:
        __import__(f"twinsock.{module}")
    except ImportError as exc:
        return f"not available ({exc})"
    return None


def start_stream_sender(
    port: int, line_len: int, total_bytes: int, duration: float, cpu: int | None = None,
    *, crlf: bool = False,
) -> subprocess.Popen[bytes]:
    """Start the C sender: it connects to 127.0.0.1:port and streams ``total_bytes``.

    ``line_len`` > 0 sends lines of that length ("x" * (line_len - 1) + "\\n",
    or ending in "\\r\\n" with ``crlf``); 0 sends raw bytes. It stops early
    after ``duration`` seconds (at a line boundary) and closes.
    """
    cmd = [str(build("loadgen")), "stream", HOST, str(port), str(line_len), str(total_bytes),
           str(duration)]
    if crlf:
        cmd.append("crlf")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pin(proc.pid, cpu)
    return proc


def finish_sender(proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    """Wait (bounded) for a stream sender and return its JSON report."""
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        raise RuntimeError("stream sender did not finish") from None
    if proc.returncode != 0:
        raise RuntimeError(f"stream sender failed: {err.decode()}")
    result: dict[str, Any] = json.loads(out)
    return result


@contextmanager
def pinned_self(cpu: int | None) -> Iterator[None]:
    """Run the block with this process pinned to ``cpu`` (no-op for None)."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def paired_ratio(a: Samples, b: Samples, key: str = "requests_per_s") -> float | None:
    """Median over rounds of a/b, each round's two figures measured back to back.

    Less sensitive than a ratio of medians to a noisy neighbour slowing one
    whole round down.
    """
    pairs = [
        float(x[key]) / float(y[key])
        for x, y in zip(a.extra, b.extra, strict=False)
        if key in x and key in y and float(y[key]) > 0
    ]
    return statistics.median(pairs) if pairs else None


ECHO_HEADERS = ("server", "req/s", "ratio", "paired ratio", "req per server CPU-s", "CPU ratio",
                "p50 us", "p99 us", "errors")


def echo_rows(results: dict[str, Samples], base_label: str) -> list[list[str]]:
    """Rows for :data:`ECHO_HEADERS`: medians, and ratios to ``base_label``.

    "ratio" is the ratio of the median req/s; "paired ratio" the median of the
    per-round ratios; "CPU ratio" compares requests per server CPU-second.
    """
    base = results[base_label]
    base_eff = median_of(base, "req_per_cpu_s")
    rows = []
    for s in results.values():
        if s.unavailable is not None:
            rows.append([s.label, "not available", "", "", "", "", "", "", s.unavailable[:60]])
            continue
        eff = median_of(s, "req_per_cpu_s")
        paired = paired_ratio(s, base)
        rows.append([
            s.label,
            fmt(s.median),
            ratio(s.median, base.median),
            "n/a" if paired is None else f"{paired:.2f}",
            fmt(eff),
            ratio(eff, base_eff),
            fmt(median_of(s, "p50_us")),
            fmt(median_of(s, "p99_us")),
            str(sum(int(e["errors"]) for e in s.extra)),
        ])
    return rows
