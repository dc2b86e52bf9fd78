"""``asyncnet.run_server`` with 1 and 2 worker processes: requests/s and per server CPU-second.

How this works: for each loop (the default asyncio loop, then uvloop) these
servers from ``servers.py`` run one after the other: ``twinsock_run_server``
(``twinsock_serve``'s coroutine echo handler on ``asyncnet.run_server``) with
``--workers 1`` (it serves in its own process) and ``--workers 2`` (a
supervisor that forks two workers, each on its own ``SO_REUSEPORT``
listener), the same for ``twinsock_run_server_lines`` (``run_server(lines=True)``
with ``serve_lines``' echo callback), and the C epoll echo server (what the
load generator can drive under the same conditions). Unlike the other echo
benchmarks **no server is pinned**: the workers must be free to use every
CPU. The C load generator stays pinned to the first CPU (``--no-pin`` frees
it too), so on a 2-core machine it shares a core with the workers: with two
workers, three busy processes share two cores, and the figures say what that
machine gives, not how the workers scale on a bigger one. Before the rounds,
each ``run_server`` is started once to check that its process tree has the
expected size (1, or the supervisor and its workers), since the server CPU
figure is the load generator's sum over that tree (``loadgen.c``); a server
CPU share above 1.0 means more than one core served. Rounds are interleaved
and medians reported, with paired ratios (2 workers / 1 worker, measured back
to back) and requests per server CPU-second.

    python bench/bench_workers.py [--conns 100] [--lines 64] [--loops default,uvloop]
                                  [--handlers echo,lines] [--quick]
"""

from __future__ import annotations

import argparse
import sys

from common import (
    ECHO_HEADERS,
    Pinning,
    Samples,
    ServerSpec,
    Unavailable,
    add_common_args,
    apply_quick,
    echo_rows,
    fmt,
    interleaved_echo,
    median_of,
    paired_ratio,
    process_tree,
    progress,
    ratio,
    running,
    table,
)

#: handler name in the tables -> servers.py name
HANDLERS = {"echo": "twinsock_run_server", "lines": "twinsock_run_server_lines"}
WORKERS = (1, 2)


def worker_spec(kind: str, workers: int, uv: bool) -> ServerSpec:
    suffix = " (uvloop)" if uv else ""
    return ServerSpec(f"{kind} x{workers}{suffix}", kind, uv, ("--workers", str(workers)),
                      pinned=False, listeners=workers)


def specs_for(loop: str, handlers: list[str]) -> list[ServerSpec]:
    uv = loop == "uvloop"
    specs = [worker_spec(HANDLERS[h], n, uv) for h in handlers for n in WORKERS]
    return [*specs, ServerSpec("C epoll (reference)", "c_epoll", pinned=False)]


def check_tree(spec: ServerSpec, workers: int) -> str:
    """Start ``spec`` once: its process tree must be 1 process, or supervisor + workers."""
    expected = 1 if workers == 1 else workers + 1
    try:
        with running(spec) as server:
            found = len(process_tree(server.pid))
    except Unavailable as exc:
        return f"not available ({exc})"
    verdict = "ok" if found == expected else f"EXPECTED {expected}: the CPU figure may be wrong"
    return f"{found} process(es), {verdict}"


def cpu_share(s: Samples, key: str = "server_cpu") -> str:
    value = median_of(s, key)
    return "n/a" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> list[list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser, duration=2.0, warmup=0.5, rounds=5)
    parser.add_argument("--conns", type=int, default=100)
    parser.add_argument("--lines", default="64",
                        help="comma-separated line lengths, terminator included")
    parser.add_argument("--loops", default="default,uvloop")
    parser.add_argument("--handlers", default=",".join(HANDLERS),
                        help=f"comma-separated subset of {','.join(HANDLERS)}")
    args = parser.parse_args(argv)
    handlers = [h for h in args.handlers.split(",") if h]
    if not handlers or any(h not in HANDLERS for h in handlers):
        parser.error(f"--handlers: choose from {', '.join(HANDLERS)}")
    apply_quick(args)
    # The servers are never pinned (ServerSpec.pinned=False); this pins only the load generator.
    pinning = Pinning.choose(not args.no_pin)
    summary: list[list[str]] = []
    for loop in args.loops.split(","):
        specs = specs_for(loop, handlers)
        for spec in specs[:-1]:
            workers = int(spec.extra_args[1])
            progress(f"bench_workers: {spec.label}: {check_tree(spec, workers)}")
        for line_len in (int(x) for x in args.lines.split(",")):
            where = ("not pinned" if pinning.client_cpu is None
                     else f"on CPU {pinning.client_cpu}")
            progress(f"bench_workers: {loop} loop, {args.conns} connections, "
                     f"{line_len}-byte lines, {args.rounds} rounds of {args.duration} s, "
                     f"servers not pinned, load generator {where}")
            results = interleaved_echo(specs, args.conns, line_len, args.duration, args.warmup,
                                       args.rounds, pinning)
            base = specs[0].label
            print(f"\nrun_server, {loop} loop, {args.conns} connections, {line_len}-byte lines "
                  f"(median of {args.rounds} rounds; ratios to {base}; servers not pinned)")
            print(table((*ECHO_HEADERS, "server CPU", "loadgen CPU"), [
                [*row, cpu_share(results[row[0]]), cpu_share(results[row[0]], "loadgen_cpu")]
                for row in echo_rows(results, base)
            ]))
            for handler in handlers:
                one, two = (results[worker_spec(HANDLERS[handler], n, loop == "uvloop").label]
                            for n in WORKERS)
                if one.unavailable is not None or two.unavailable is not None:
                    summary.append([loop, handler, str(line_len), "not available", "", "", "",
                                    "", "", "", ""])
                    continue
                paired = paired_ratio(two, one)
                summary.append([
                    loop, handler, str(line_len),
                    fmt(one.median), fmt(two.median),
                    ratio(two.median, one.median),
                    "n/a" if paired is None else f"{paired:.2f}",
                    fmt(median_of(one, "req_per_cpu_s")), fmt(median_of(two, "req_per_cpu_s")),
                    f"{cpu_share(one)} / {cpu_share(two)}",
                    f"{cpu_share(one, 'loadgen_cpu')} / {cpu_share(two, 'loadgen_cpu')}",
                ])
    print("\nSummary: run_server with 2 workers against 1 (servers not pinned; the load "
          "generator shares the machine's CPUs with them)")
    print(table(["loop", "handler", "line bytes", "req/s x1", "req/s x2", "x2 / x1",
                 "x2 / x1 (paired)", "req per CPU-s x1", "req per CPU-s x2",
                 "server CPU x1 / x2", "loadgen CPU x1 / x2"], summary))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
