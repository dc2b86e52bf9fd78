"""Lines per second: twinsock ``Socket.recv_line`` against ``socket.makefile("rb").readline``.

How this works: the benchmark process listens on 127.0.0.1, the C sender
(``loadgen stream``, another process, on the other CPU) connects and streams
LINES lines of 80 bytes (79 "x" and "\\n") as fast as the kernel takes them,
then closes. The reader, in this process, accepts and reads line by line
until the end of the stream; lines/s is the count over the time from accept
to end of stream, and the count is checked against what was sent. The two
readers alternate for ROUNDS rounds; the median round is reported (the best
is printed too). Issue 2's bar: twinsock / makefile >= 0.8.

    python bench/bench_lines.py [--lines N] [--rounds R] [--duration S] [--quick]
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from collections.abc import Callable
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

LINE_LEN = 80


def read_stdlib(port_ready: Callable[[int], None]) -> int:
    with socket.create_server((HOST, 0)) as listener:
        port_ready(listener.getsockname()[1])
        conn, _ = listener.accept()
        with conn, conn.makefile("rb") as reader:
            count = 0
            readline = reader.readline
            while readline():
                count += 1
            return count


def read_twinsock(port_ready: Callable[[int], None]) -> int:
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


READERS: dict[str, Callable[[Callable[[int], None]], int]] = {
    "socket.makefile('rb').readline": read_stdlib,
    "twinsock Socket.recv_line": read_twinsock,
}


def measure(reader: Callable[[Callable[[int], None]], int], lines: int, duration: float,
            pinning: Pinning) -> float:
    """One run: lines per second read by ``reader``."""
    state: dict[str, Any] = {}

    def port_ready(port: int) -> None:
        state["sender"] = start_stream_sender(port, LINE_LEN, lines * LINE_LEN, duration,
                                              pinning.client_cpu)
        state["t0"] = time.perf_counter()

    with pinned_self(pinning.server_cpu):
        count = reader(port_ready)
    elapsed = time.perf_counter() - state["t0"]
    report = finish_sender(state["sender"])
    if count * LINE_LEN != report["sent"]:
        raise RuntimeError(f"read {count} lines but {report['sent'] / LINE_LEN} were sent")
    return count / elapsed


def main(argv: list[str] | None = None) -> list[list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser, duration=3.0, warmup=0.0, rounds=7)
    parser.add_argument("--lines", type=int, default=5_000_000,
                        help="lines sent per run (default 5,000,000; --duration caps the time)")
    args = parser.parse_args(argv)
    apply_quick(args)
    if args.quick:
        args.lines = min(args.lines, 300_000)
    pinning = Pinning.choose(not args.no_pin)
    missing = twinsock_available("net")
    results = {label: Samples(label) for label in READERS}
    if missing:
        results["twinsock Socket.recv_line"].unavailable = missing
    progress(f"bench_lines: {args.lines:,} lines of {LINE_LEN} bytes, {args.rounds} rounds")
    for round_no in range(args.rounds):
        order = list(READERS.items())
        if round_no % 2:
            order.reverse()
        for label, reader in order:
            if results[label].unavailable:
                continue
            rate = measure(reader, args.lines, args.duration, pinning)
            results[label].values.append(rate)
            progress(f"  round {round_no + 1}/{args.rounds} {label:<32} {rate:>12,.0f} lines/s")
    base = results["socket.makefile('rb').readline"]
    rows = [
        [s.label, fmt(s.median), fmt(s.best), ratio(s.median, base.median)]
        for s in results.values()
    ]
    print(f"\nLines/s reading {LINE_LEN}-byte lines over loopback (median of {args.rounds} rounds)")
    print(table(["reader", "lines/s (median)", "lines/s (best)", "ratio to makefile"], rows))
    print("bar (issue 2): twinsock / makefile >= 0.8")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
