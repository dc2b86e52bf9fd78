"""Blocking thread-per-connection line echo: twinsock ``Socket`` against ``makefile().readline``.

How this works: each server (``servers.py``) runs in its own process, pinned
to one CPU; the C load generator (``loadgen echo``), pinned to the other,
opens CONNS connections, and each connection sends a LINE-byte line and waits
for its echo before sending the next (one request in flight per connection).
After a warm-up, requests/s and p50/p99 latency are measured for DURATION
seconds. Servers alternate round by round (forward, then reverse order); the
median of ROUNDS rounds is reported. The C epoll echo server runs in the same
rounds as the ceiling: when it is far above every Python server, the load
generator is not what limits them. Issue 2's bar: twinsock_thread /
stdlib_thread_makefile >= 0.9.

    python bench/bench_thread_echo.py [--conns 100] [--line 64] [--rounds R] [--quick]
"""

from __future__ import annotations

import argparse
import sys

from common import (
    ECHO_HEADERS,
    Pinning,
    ServerSpec,
    add_common_args,
    apply_quick,
    echo_rows,
    interleaved_echo,
    progress,
    table,
)

STDLIB = ServerSpec("stdlib_thread_makefile", "stdlib_thread_makefile")
TWINSOCK = ServerSpec("twinsock_thread", "twinsock_thread")
C_EPOLL = ServerSpec("C epoll (ceiling)", "c_epoll")


def main(argv: list[str] | None = None) -> list[list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser, duration=3.0, warmup=1.0, rounds=5)
    parser.add_argument("--conns", type=int, default=100)
    parser.add_argument("--line", type=int, default=64, help="line length with its \\n")
    args = parser.parse_args(argv)
    apply_quick(args)
    pinning = Pinning.choose(not args.no_pin)
    progress(f"bench_thread_echo: {args.conns} connections, {args.line}-byte lines, "
             f"{args.rounds} rounds of {args.duration} s")
    results = interleaved_echo([STDLIB, TWINSOCK, C_EPOLL], args.conns, args.line,
                               args.duration, args.warmup, args.rounds, pinning)
    print(f"\nThread-per-connection echo, {args.conns} connections, {args.line}-byte lines "
          f"(median of {args.rounds} rounds; ratios to {STDLIB.label})")
    rows = echo_rows(results, STDLIB.label)
    print(table(ECHO_HEADERS, rows))
    print("bar (issue 2): twinsock_thread / stdlib_thread_makefile >= 0.9")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
