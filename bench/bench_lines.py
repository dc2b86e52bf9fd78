"""Lines per second: twinsock ``recv_line`` (both kinds) against ``socket.makefile("rb").readline``.

How this works: the benchmark process listens on 127.0.0.1, the C sender
(``loadgen stream``, another process, on the other CPU) connects and streams
LINES lines of LINE_LEN bytes (LINE_LEN - 1 "x" and "\\n", or LINE_LEN - 2 "x"
and "\\r\\n" for the CRLF cases) as fast as the kernel takes them, then
closes. The reader, in this process, accepts and reads line by line until the
end of the stream; lines/s is the count over the time from accept to end of
stream, and the count is checked against what was sent. The readers are the
blocking ``Socket.recv_line`` and ``AsyncSocket.recv_line`` (default loop and
uvloop), each over LF and CRLF lines, and makefile's readline over LF lines.
They alternate for ROUNDS rounds (forward, then reversed); the median round
is reported (the best is printed too), and each kind's CRLF figure is also
compared with its LF figure round by round (the paired ratio).

Bars: issue 2, blocking LF / makefile >= 0.8; issue 9, CRLF / LF >= 0.9 on
every kind.

    python bench/bench_lines.py [--lines N] [--line-len L] [--rounds R] [--duration S]
                                [--kinds blocking,asyncio,uvloop] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import socket
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common import (
    HOST,
    Pinning,
    Samples,
    add_common_args,
    apply_quick,
    finish_sender,
    fmt,
    pinned_self,
    progress,
    ratio,
    start_stream_sender,
    table,
    twinsock_available,
)

PortReady = Callable[[int], None]


def read_stdlib(port_ready: PortReady) -> int:
    with socket.create_server((HOST, 0)) as listener:
        port_ready(listener.getsockname()[1])
        conn, _ = listener.accept()
        with conn, conn.makefile("rb") as reader:
            count = 0
            readline = reader.readline
            while readline():
                count += 1
            return count


def read_twinsock(port_ready: PortReady) -> int:
    from twinsock.net import Socket

    listener = Socket()
    try:
        listener.bind_addr(0, HOST)
        listener.listen(1)
        port_ready(listener.get_local_addr()[1])
        conn = listener.accept()
        try:
            count = 0
            recv_line = conn.recv_line
            while recv_line():
                count += 1
            return count
        finally:
            conn.close()
    finally:
        listener.close()


async def _read_async(port_ready: PortReady) -> int:
    from twinsock.asyncnet import AsyncSocket

    listener = AsyncSocket()
    try:
        listener.bind_addr(0, HOST)
        listener.listen(1)
        port_ready(listener.get_local_addr()[1])
        conn = await listener.accept()
        try:
            count = 0
            recv_line = conn.recv_line
            while await recv_line():
                count += 1
            return count
        finally:
            conn.close()
    finally:
        listener.close()


def read_twinsock_asyncio(port_ready: PortReady) -> int:
    return asyncio.run(_read_async(port_ready))


def read_twinsock_uvloop(port_ready: PortReady) -> int:
    import uvloop

    return uvloop.run(_read_async(port_ready))


@dataclass
class Reader:
    label: str
    kind: str  # "makefile", "blocking", "asyncio" or "uvloop"
    crlf: bool
    read: Callable[[PortReady], int]


def readers(kinds: list[str]) -> list[Reader]:
    functions = {
        "blocking": ("twinsock Socket.recv_line", read_twinsock),
        "asyncio": ("twinsock AsyncSocket.recv_line, asyncio", read_twinsock_asyncio),
        "uvloop": ("twinsock AsyncSocket.recv_line, uvloop", read_twinsock_uvloop),
    }
    chosen = [Reader("socket.makefile('rb').readline, LF", "makefile", False, read_stdlib)]
    for kind in kinds:
        label, read = functions[kind]
        chosen.append(Reader(f"{label}, LF", kind, False, read))
        chosen.append(Reader(f"{label}, CRLF", kind, True, read))
    return chosen


def measure(reader: Reader, lines: int, line_len: int, duration: float,
            pinning: Pinning) -> float:
    """One run: lines per second read by ``reader``."""
    state: dict[str, Any] = {}

    def port_ready(port: int) -> None:
        state["sender"] = start_stream_sender(port, line_len, lines * line_len, duration,
                                              pinning.client_cpu, crlf=reader.crlf)
        state["t0"] = time.perf_counter()

    with pinned_self(pinning.server_cpu):
        count = reader.read(port_ready)
    elapsed: float = time.perf_counter() - state["t0"]
    report = finish_sender(state["sender"])
    if count * line_len != report["sent"]:
        raise RuntimeError(f"read {count} lines but {report['sent'] / line_len} were sent")
    return count / elapsed


def available(kind: str) -> str | None:
    """Why a kind of reader cannot run here, or None."""
    if kind == "blocking":
        return twinsock_available("net")
    missing = twinsock_available("asyncnet")
    if missing is None and kind == "uvloop" and importlib.util.find_spec("uvloop") is None:
        return "uvloop is not installed"
    return missing


def main(argv: list[str] | None = None) -> list[list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser, duration=3.0, warmup=0.0, rounds=7)
    parser.add_argument("--lines", type=int, default=5_000_000,
                        help="lines sent per run (default 5,000,000; --duration caps the time)")
    parser.add_argument("--line-len", type=int, default=80,
                        help="bytes per line, terminator included (default 80)")
    parser.add_argument("--kinds", default="blocking,asyncio,uvloop",
                        help="twinsock readers to run (default blocking,asyncio,uvloop)")
    args = parser.parse_args(argv)
    apply_quick(args)
    if args.quick:
        args.lines = min(args.lines, 300_000)
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = [k for k in kinds if k not in ("blocking", "asyncio", "uvloop")]
    if unknown:
        parser.error(f"unknown kind(s): {', '.join(unknown)}")
    pinning = Pinning.choose(not args.no_pin)
    chosen = readers(kinds)
    results = {r.label: Samples(r.label) for r in chosen}
    for r in chosen:
        if r.kind != "makefile":
            results[r.label].unavailable = available(r.kind)
    progress(f"bench_lines: {args.lines:,} lines of {args.line_len} bytes, "
             f"{args.rounds} rounds")
    for round_no in range(args.rounds):
        order = list(chosen)
        if round_no % 2:
            order.reverse()
        for reader in order:
            if results[reader.label].unavailable:
                continue
            rate = measure(reader, args.lines, args.line_len, args.duration, pinning)
            results[reader.label].values.append(rate)
            progress(f"  round {round_no + 1}/{args.rounds} {reader.label:<48} "
                     f"{rate:>12,.0f} lines/s")
    base = results[chosen[0].label]
    rows = [
        [s.label, fmt(s.median), fmt(s.best), ratio(s.median, base.median)]
        for s in results.values()
    ]
    print(f"\nLines/s reading {args.line_len}-byte lines over loopback "
          f"(median of {args.rounds} rounds)")
    print(table(["reader", "lines/s (median)", "lines/s (best)", "ratio to makefile"], rows))
    crlf_rows = []
    for lf, crlf in zip(chosen[1::2], chosen[2::2], strict=True):
        lf_values, crlf_values = results[lf.label].values, results[crlf.label].values
        paired = [c / v for c, v in zip(crlf_values, lf_values, strict=False) if v]
        crlf_rows.append([
            lf.kind,
            ratio(results[crlf.label].median, results[lf.label].median),
            f"{statistics.median(paired):.2f}" if paired else "n/a",
        ])
    if crlf_rows:
        print("\nCRLF lines against LF lines, per kind")
        print(table(["kind", "CRLF / LF (medians)", "CRLF / LF (paired)"], crlf_rows))
    print("bars: issue 2, blocking LF / makefile >= 0.8; issue 9, CRLF / LF >= 0.9 per kind")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
