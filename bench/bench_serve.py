"""The echo handler on ``asyncnet.serve`` against the same handler in a hand-written loop.

How this works: for each loop (the default asyncio loop, then uvloop) these
servers from ``servers.py`` run one after the other, each in its own process
pinned to one CPU: ``twinsock_serve`` (the handler on ``asyncnet.serve``),
``twinsock_async`` (the same handler under a hand-written ``AsyncSocket``
accept loop) and ``asyncio_streams``. The C load generator, pinned to the
other CPU, keeps CONNS connections with one line in flight each; rounds are
interleaved and medians reported with paired and per-CPU-second ratios, as in
``bench_async_echo.py``. Issue 10's bar: twinsock_serve >= 0.95x twinsock_async
on each loop (and so >= 1.3x asyncio_streams on the default loop).

    python bench/bench_serve.py [--conns 100] [--lines 64] [--loops default,uvloop]
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
        ServerSpec(f"twinsock_serve{suffix}", "twinsock_serve", uv),
        ServerSpec(f"twinsock_async{suffix}", "twinsock_async", uv),
        ServerSpec(f"asyncio_streams{suffix}", "asyncio_streams", uv),
    ]


def main(argv: list[str] | None = None) -> list[list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser, duration=2.0, warmup=0.5, rounds=5)
    parser.add_argument("--conns", type=int, default=100)
    parser.add_argument("--lines", default="64",
                        help="comma-separated line lengths, terminator included")
    parser.add_argument("--loops", default="default,uvloop")
    args = parser.parse_args(argv)
    apply_quick(args)
    pinning = Pinning.choose(not args.no_pin)
    summary: list[list[str]] = []
    for loop in args.loops.split(","):
        for line_len in (int(x) for x in args.lines.split(",")):
            specs = specs_for(loop)
            progress(f"bench_serve: {loop} loop, {args.conns} connections, "
                     f"{line_len}-byte lines, {args.rounds} rounds of {args.duration} s")
            results = interleaved_echo(specs, args.conns, line_len, args.duration, args.warmup,
                                       args.rounds, pinning)
            served, loop_by_hand, streams = (results[s.label] for s in specs)
            print(f"\nEcho handler, {loop} loop, {args.conns} connections, {line_len}-byte lines "
                  f"(median of {args.rounds} rounds; ratios to {loop_by_hand.label})")
            print(table(ECHO_HEADERS, echo_rows(results, loop_by_hand.label)))
            if served.unavailable is not None:
                summary.append([loop, str(line_len), "not available", "", ""])
                continue
            paired = paired_ratio(served, loop_by_hand)
            summary.append([
                loop,
                str(line_len),
                ratio(served.median, loop_by_hand.median),
                "n/a" if paired is None else f"{paired:.2f}",
                ratio(served.median, streams.median),
            ])
    print("\nSummary: asyncnet.serve against a hand-written AsyncSocket loop (same handler)")
    print(table(["loop", "line bytes", "/ hand-written", "/ hand-written (paired)",
                 "/ streams"], summary))
    print("bar (issue 10): twinsock_serve / twinsock_async >= 0.95 on each loop")
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
