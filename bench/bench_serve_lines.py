"""``asyncnet.serve_lines`` against asyncio streams, raw protocols, ``serve`` and C.

How this works: for each loop (the default asyncio loop, then uvloop) these
servers from ``servers.py`` run one after the other, each in its own process
pinned to one CPU: ``twinsock_serve_lines`` (an ``on_line`` callback that
sends the line back: no task at all), ``asyncio_streams`` (``readline`` +
``write`` + ``drain``), ``asyncio_protocol`` and
``asyncio_buffered_protocol`` (hand-written callbacks that split lines
themselves: the ceiling for any library), ``twinsock_serve`` (the coroutine
echo handler on ``asyncnet.serve``, a task per connection),
``twinsock_async`` (the same handler under a hand-written ``AsyncSocket``
accept loop) and the C epoll echo server (the load generator's headroom);
``--without`` leaves some of them out.  The C load generator, pinned to
the other CPU, keeps CONNS connections with one 64-byte line in flight each;
rounds are interleaved and medians reported with paired and per-CPU-second
ratios, as in ``bench_async_echo.py``.  Issue 11's bars: serve_lines >= 1.3x
asyncio streams on uvloop and >= 2.0x on the default loop; goal: >= 0.9x the
faster raw protocol on the same loop.

    python bench/bench_serve_lines.py [--conns 100] [--lines 64] [--loops default,uvloop]
"""

from __future__ import annotations

import argparse
import sys

from common import (
    ECHO_HEADERS,
    Pinning,
    Samples,
    ServerSpec,
    add_common_args,
    apply_quick,
    echo_rows,
    interleaved_echo,
    median_of,
    paired_ratio,
    progress,
    ratio,
    table,
)

BARS = {"default": 2.0, "uvloop": 1.3}


def specs_for(loop: str) -> list[ServerSpec]:
    uv = loop == "uvloop"
    suffix = " (uvloop)" if uv else ""
    return [
        ServerSpec(f"twinsock_serve_lines{suffix}", "twinsock_serve_lines", uv),
        ServerSpec(f"asyncio_streams{suffix}", "asyncio_streams", uv),
        ServerSpec(f"asyncio_protocol{suffix}", "asyncio_protocol", uv),
        ServerSpec(f"asyncio_buffered_protocol{suffix}", "asyncio_buffered_protocol", uv),
        ServerSpec(f"twinsock_serve{suffix}", "twinsock_serve", uv),
        ServerSpec(f"twinsock_async{suffix}", "twinsock_async", uv),
        ServerSpec("C epoll (reference)", "c_epoll"),
    ]

# serve_lines and the peers its ratios need are always measured.
REQUIRED = ("twinsock_serve_lines", "asyncio_streams", "asyncio_protocol",
            "asyncio_buffered_protocol")


def paired(a: Samples, b: Samples) -> str:
    value = paired_ratio(a, b)
    return "n/a" if value is None else f"{value:.2f}"


def cpu_ratio(a: Samples, b: Samples) -> str:
    return ratio(median_of(a, "req_per_cpu_s"), median_of(b, "req_per_cpu_s"))


def main(argv: list[str] | None = None) -> list[list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser, duration=2.0, warmup=0.5, rounds=5)
    parser.add_argument("--conns", type=int, default=100)
    parser.add_argument("--lines", default="64",
                        help="comma-separated line lengths, terminator included")
    parser.add_argument("--loops", default="default,uvloop")
    parser.add_argument("--without", default="",
                        help="comma-separated servers to leave out (twinsock_serve, "
                             "twinsock_async, c_epoll)")
    args = parser.parse_args(argv)
    without = {name for name in args.without.split(",") if name}
    if without & set(REQUIRED):
        parser.error(f"--without cannot drop {', '.join(sorted(without & set(REQUIRED)))}")
    apply_quick(args)
    pinning = Pinning.choose(not args.no_pin)
    summary: list[list[str]] = []
    for loop in args.loops.split(","):
        for line_len in (int(x) for x in args.lines.split(",")):
            specs = [s for s in specs_for(loop) if s.kind not in without]
            progress(f"bench_serve_lines: {loop} loop, {args.conns} connections, "
                     f"{line_len}-byte lines, {args.rounds} rounds of {args.duration} s")
            results = interleaved_echo(specs, args.conns, line_len, args.duration, args.warmup,
                                       args.rounds, pinning)
            lines, streams, proto, buffered = (results[s.label] for s in specs[:4])
            coroutine = [results[s.label] for s in specs if s.kind == "twinsock_serve"]
            print(f"\nLine echo, {loop} loop, {args.conns} connections, {line_len}-byte lines "
                  f"(median of {args.rounds} rounds; ratios to {streams.label})")
            print(table(ECHO_HEADERS, echo_rows(results, streams.label)))
            if lines.unavailable is not None:
                summary.append([loop, str(line_len), "not available", "", "", "", "", ""])
                continue
            raw = max((proto, buffered), key=lambda s: s.median or 0.0)
            summary.append([
                loop,
                str(line_len),
                ratio(lines.median, streams.median),
                paired(lines, streams),
                cpu_ratio(lines, streams),
                f"{ratio(lines.median, raw.median)} ({raw.label.split()[0]})",
                cpu_ratio(lines, raw),
                ratio(lines.median, coroutine[0].median) if coroutine else "n/a",
            ])
    print("\nSummary: serve_lines against its peers on the same loop")
    print(table(["loop", "line bytes", "/ streams", "/ streams (paired)", "/ streams (CPU)",
                 "/ faster raw protocol", "/ raw (CPU)", "/ serve"], summary))
    print("bars (issue 11): serve_lines / asyncio_streams >= "
          + ", ".join(f"{bar} on {loop}" for loop, bar in BARS.items())
          + "; goal: >= 0.9 of the faster raw protocol")
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
