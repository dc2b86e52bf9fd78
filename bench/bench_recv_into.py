"""Throughput of ``Socket.recv_into`` with a 64 KiB caller buffer against a raw ``recv_into`` loop.

How this works: the benchmark process listens on 127.0.0.1; the C sender
(``loadgen stream``, another process, on the other CPU) connects and streams
TOTAL bytes in 256 KiB blocks, then closes. The reader, in this process,
accepts and calls ``recv_into`` with one preallocated 64 KiB buffer until the
end of the stream; MB/s (10**6 bytes) is the byte count over the time from
accept to end of stream. Peers: the raw ``socket.socket.recv_into`` loop (the
ceiling), twinsock's buffered ``Socket`` (the default: it waits until the 64
KiB are filled, and should read straight into the caller's buffer) and, for
information, an unbuffered ``Socket(buffered=False)``. They alternate for
ROUNDS rounds; the median is reported. Issue 2's bar: buffered twinsock / raw
>= 0.9.

    python bench/bench_recv_into.py [--megabytes N] [--rounds R] [--duration S] [--quick]
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

BUF_SIZE = 64 * 1024
RAW = "raw socket.recv_into"
TWINSOCK = "twinsock Socket.recv_into"
TWINSOCK_UNBUFFERED = "twinsock Socket(buffered=False)"


def read_raw(port_ready: Callable[[int], None]) -> int:
    buf = bytearray(BUF_SIZE)
    with socket.create_server((HOST, 0)) as listener:
        port_ready(listener.getsockname()[1])
        conn, _ = listener.accept()
        with conn:
            total = 0
            recv_into = conn.recv_into
            while n := recv_into(buf):
                total += n
            return total


def make_twinsock_reader(buffered: bool) -> Callable[[Callable[[int], None]], int]:
    def read_twinsock(port_ready: Callable[[int], None]) -> int:
        from twinsock.net import Socket

        buf = bytearray(BUF_SIZE)
        listener = Socket(buffered=buffered)
        try:
            listener.bind_addr(0, HOST)
            listener.listen(1)
            port_ready(listener.get_local_addr()[1])
            conn = listener.accept()
            try:
                total = 0
                recv_into = conn.recv_into
                while n := recv_into(buf):
                    total += n
                return total
            finally:
                conn.close()
        finally:
            listener.close()

    return read_twinsock


READERS: dict[str, Callable[[Callable[[int], None]], int]] = {
    RAW: read_raw,
    TWINSOCK: make_twinsock_reader(buffered=True),
    TWINSOCK_UNBUFFERED: make_twinsock_reader(buffered=False),
}


def measure(reader: Callable[[Callable[[int], None]], int], total: int, duration: float,
            pinning: Pinning) -> float:
    """One run: MB/s read by ``reader``."""
    state: dict[str, Any] = {}

    def port_ready(port: int) -> None:
        state["sender"] = start_stream_sender(port, 0, total, duration, pinning.client_cpu)
        state["t0"] = time.perf_counter()

    with pinned_self(pinning.server_cpu):
        received = reader(port_ready)
    elapsed: float = time.perf_counter() - state["t0"]
    report = finish_sender(state["sender"])
    if received != report["sent"]:
        raise RuntimeError(f"read {received} bytes but {report['sent']} were sent")
    return received / elapsed / 1e6


def main(argv: list[str] | None = None) -> list[list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser, duration=3.0, warmup=0.0, rounds=5)
    parser.add_argument("--megabytes", type=int, default=5000,
                        help="MB sent per run (default 5000; --duration caps the time)")
    args = parser.parse_args(argv)
    apply_quick(args)
    if args.quick:
        args.megabytes = min(args.megabytes, 200)
    pinning = Pinning.choose(not args.no_pin)
    missing = twinsock_available("net")
    results = {label: Samples(label) for label in READERS}
    if missing:
        results[TWINSOCK].unavailable = results[TWINSOCK_UNBUFFERED].unavailable = missing
    progress(f"bench_recv_into: {args.megabytes} MB, 64 KiB buffer, {args.rounds} rounds")
    for round_no in range(args.rounds):
        order = list(READERS.items())
        if round_no % 2:
            order.reverse()
        for label, reader in order:
            if results[label].unavailable:
                continue
            rate = measure(reader, args.megabytes * 10**6, args.duration, pinning)
            results[label].values.append(rate)
            progress(f"  round {round_no + 1}/{args.rounds} {label:<32} {rate:>8,.0f} MB/s")
    base = results[RAW]
    rows = [
        [s.label, fmt(s.median), fmt(s.best), ratio(s.median, base.median)]
        for s in results.values()
    ]
    print(f"\nrecv_into throughput, 64 KiB caller buffer (median of {args.rounds} rounds)")
    print(table(["reader", "MB/s (median)", "MB/s (best)", "ratio to raw"], rows))
    print("bar (issue 2): twinsock Socket.recv_into / raw >= 0.9")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
