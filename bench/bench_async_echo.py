"""Async line echo: twinsock ``AsyncSocket`` against asyncio streams and a raw ``Protocol``.

How this works: for each loop (the default asyncio loop, then uvloop) and each
line length (64 bytes and 1 KiB by default), these servers from ``servers.py``
run one after the other, each in its own process pinned to one CPU:
``twinsock_async`` (``recv_line`` + ``send`` in a task per connection),
``asyncio_streams`` (``readline`` + ``write`` + ``drain``),
``asyncio_protocol`` (callbacks only: the raw ``Protocol`` the issue compares
against) and ``asyncio_buffered_protocol`` (callbacks with ``recv_into``: on
Python 3.11's default loop a plain ``Protocol`` allocates 256 KiB per read, so
this one is the real ceiling for a buffer-based API). The C load generator,
pinned to the other CPU, keeps CONNS connections with one line in flight each;
after a warm-up it measures requests/s and p50/p99 latency for DURATION
seconds. The C epoll echo server joins each group once per round as a
reference (the load generator's headroom). Peers alternate (forward, then
reverse order) for ROUNDS rounds; medians are reported, with the paired per-
round ratio and requests per server CPU-second, which a noisy neighbour
disturbs less. Issue 3's bars: twinsock_async >= 1.3x asyncio_streams on the
same loop; the ratio to the raw Protocol is printed.

    python bench/bench_async_echo.py [--conns 100] [--lines 64,1024] [--loops default,uvloop]
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
    paired_ratio,
    progress,
    ratio,
    table,
)


def specs_for(loop: str) -> list[ServerSpec]:
    uv = loop == "uvloop"
    suffix = " (uvloop)" if uv else ""
    return [
        ServerSpec(f"twinsock_async{suffix}", "twinsock_async", uv),
        ServerSpec(f"asyncio_streams{suffix}", "asyncio_streams", uv),
        ServerSpec(f"asyncio_protocol{suffix}", "asyncio_protocol", uv),
        ServerSpec(f"asyncio_buffered_protocol{suffix}", "asyncio_buffered_protocol", uv),
        ServerSpec("C epoll (reference)", "c_epoll"),
    ]


def main(argv: list[str] | None = None) -> list[list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser, duration=2.0, warmup=0.5, rounds=3)
    parser.add_argument("--conns", type=int, default=100)
    parser.add_argument("--lines", default="64,1024",
                        help="comma-separated line lengths, terminator included")
    parser.add_argument("--loops", default="default,uvloop")
    args = parser.parse_args(argv)
    apply_quick(args)
    pinning = Pinning.choose(not args.no_pin)
    summary: list[list[str]] = []
    for loop in args.loops.split(","):
        for line_len in (int(x) for x in args.lines.split(",")):
            specs = specs_for(loop)
            progress(f"bench_async_echo: {loop} loop, {args.conns} connections, "
                     f"{line_len}-byte lines, {args.rounds} rounds of {args.duration} s")
            results = interleaved_echo(specs, args.conns, line_len, args.duration, args.warmup,
                                       args.rounds, pinning)
            twin, streams, proto = (results[s.label] for s in specs[:3])
            print(f"\nAsync echo, {loop} loop, {args.conns} connections, {line_len}-byte lines "
                  f"(median of {args.rounds} rounds; ratios to {streams.label})")
            print(table(ECHO_HEADERS, echo_rows(results, streams.label)))
            if twin.unavailable is not None:
                summary.append([loop, str(line_len), "not available", "", "", ""])
                continue
            p_streams = paired_ratio(twin, streams)
            p_proto = paired_ratio(twin, proto)
            summary.append([
                loop,
                str(line_len),
                ratio(twin.median, streams.median),
                "n/a" if p_streams is None else f"{p_streams:.2f}",
                ratio(twin.median, proto.median),
                "n/a" if p_proto is None else f"{p_proto:.2f}",
            ])
    print("\nSummary: twinsock_async against its peers on the same loop")
    print(table(["loop", "line bytes", "/ streams", "/ streams (paired)", "/ Protocol",
                 "/ Protocol (paired)"], summary))
    print("bar (issue 3): twinsock_async / asyncio_streams >= 1.3 on each loop")
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
