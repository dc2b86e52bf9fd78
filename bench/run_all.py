"""Run every benchmark in one go, with short default durations.

How this works: the benchmarks run one after the other in this process (each
one starts its own server and load generator processes), in the order of the
issues' bars: lines/s, recv_into, thread echo, async echo, memory, then TLS.
Each prints its own table and ratios; progress goes to stderr. The default
durations keep the whole suite at about 6-8 minutes on a 2-core machine;
``--quick`` is a smoke run of a few seconds per benchmark (figures from it are
not meaningful). ``--only NAME[,NAME]`` picks some of them.

    python bench/run_all.py [--quick] [--only lines,recv_into,thread_echo,async_echo,memory,tls]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import bench_async_echo
import bench_lines
import bench_memory
import bench_recv_into
import bench_thread_echo
import bench_tls
from common import progress

BENCHES: dict[str, Callable[[list[str] | None], object]] = {
    "lines": bench_lines.main,
    "recv_into": bench_recv_into.main,
    "thread_echo": bench_thread_echo.main,
    "async_echo": bench_async_echo.main,
    "memory": bench_memory.main,
    "tls": bench_tls.main,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds per benchmark")
    parser.add_argument("--only", default=",".join(BENCHES),
                        help=f"comma-separated subset of {','.join(BENCHES)}")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    sub_args = ["--quick"] if args.quick else []
    start = time.monotonic()
    for name in names:
        print(f"\n===== {name} =====", flush=True)
        t0 = time.monotonic()
        BENCHES[name](sub_args)
        sys.stdout.flush()
        progress(f"[{name} took {time.monotonic() - t0:.0f} s]")
    print(f"\nall done in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
