"""Resident memory per idle connection: twinsock ``AsyncSocket`` against asyncio streams.

How this works: each server (``servers.py``, its own process) starts on a free
loopback port; its resident memory (VmRSS from /proc/PID/status) is read once
it listens and has settled. Then the C load generator in ``idle`` mode (a
separate process) opens CONNS connections (10,000 by default), does one echo
round trip on each, so that the server really holds a reader and a task per
connection, and keeps them all open and idle. After a settle time the server's
RSS is read again; the figure is (after - before) / connections. The soft
RLIMIT_NOFILE of both processes is raised to the hard limit (20,000 here); a
server that cannot hold CONNS connections is reported as such. Peers alternate
for ROUNDS rounds (the median is reported). Issue 3's bar: twinsock_async <=
asyncio_streams.

    python bench/bench_memory.py [--conns 10000] [--loops default,uvloop] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
from typing import Any

from _build import build
from common import (
    HOST,
    Samples,
    ServerSpec,
    Unavailable,
    fmt,
    progress,
    ratio,
    running,
    table,
)

SETTLE = 1.0


def hold_idle(port: int, conns: int, hold: float) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start ``loadgen idle`` and wait (bounded) until its connections are up and idle."""
    cmd = [str(build("loadgen")), "idle", HOST, str(port), str(conns), str(hold)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # loadgen gives up on its own after 60 s of setup
    if not line:
        proc.wait(timeout=10)
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise RuntimeError(f"loadgen idle failed: {err}")
    return proc, json.loads(line)


def release(proc: subprocess.Popen[bytes]) -> None:
    """Let the idle load generator go: close its stdin, then wait (kill by pid if stuck)."""
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def measure(spec: ServerSpec, conns: int) -> dict[str, Any]:
    with running(spec) as server:
        time.sleep(SETTLE)
        before = server.rss_kib()
        proc, report = hold_idle(server.port, conns, hold=120.0)
        try:
            time.sleep(SETTLE)
            after = server.rss_kib()
            alive = server.proc.poll() is None
        finally:
            release(proc)
    held = int(report["idle"])
    return {
        "before_kib": before,
        "after_kib": after,
        "held": held,
        "errors": int(report["errors"]),
        "alive": alive,
        "per_conn_kib": (after - before) / held if held else None,
    }


def main(argv: list[str] | None = None) -> list[list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conns", type=int, default=10_000)
    parser.add_argument("--loops", default="default,uvloop")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 connections")
    args = parser.parse_args(argv)
    if args.quick:
        args.conns, args.rounds = min(args.conns, 1000), 1
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < args.conns + 100:
        progress(f"RLIMIT_NOFILE hard limit {hard} is below {args.conns} connections: "
                 "the servers cannot hold them all")
    specs: list[ServerSpec] = []
    for loop in args.loops.split(","):
        uv = loop == "uvloop"
        suffix = " (uvloop)" if uv else ""
        specs += [ServerSpec(f"twinsock_async{suffix}", "twinsock_async", uv),
                  ServerSpec(f"asyncio_streams{suffix}", "asyncio_streams", uv),
                  ServerSpec(f"asyncio_buffered_protocol{suffix}", "asyncio_buffered_protocol",
                             uv)]
    results = {s.label: Samples(s.label) for s in specs}
    progress(f"bench_memory: {args.conns:,} idle connections per server, {args.rounds} round(s)")
    for round_no in range(args.rounds):
        for spec in specs if round_no % 2 == 0 else list(reversed(specs)):
            samples = results[spec.label]
            if samples.unavailable is not None:
                continue
            try:
                res = measure(spec, args.conns)
            except Unavailable as exc:
                samples.unavailable = str(exc) or "not available"
                continue
            samples.extra.append(res)
            if res["per_conn_kib"] is not None and res["held"] >= args.conns and res["alive"]:
                samples.values.append(res["per_conn_kib"])
            progress(f"  round {round_no + 1}/{args.rounds} {spec.label:<36} held {res['held']:,}"
                     f"  RSS {res['before_kib']:,} -> {res['after_kib']:,} KiB"
                     f"  = {fmt(res['per_conn_kib'], 2)} KiB/conn  errors {res['errors']}")
    rows = []
    for loop in args.loops.split(","):
        suffix = " (uvloop)" if loop == "uvloop" else ""
        streams = results[f"asyncio_streams{suffix}"]
        for label in (f"twinsock_async{suffix}", f"asyncio_streams{suffix}",
                      f"asyncio_buffered_protocol{suffix}"):
            s = results[label]
            if s.unavailable is not None:
                rows.append([label, "not available", "", "", s.unavailable[:60]])
            elif not s.values:
                last = s.extra[-1] if s.extra else {}
                rows.append([label, f"could not hold {args.conns:,}", str(last.get("held", 0)),
                             "", f"server alive: {last.get('alive')}"])
            else:
                rows.append([label, fmt(s.median, 2), f"{args.conns:,}",
                             ratio(s.median, streams.median), ""])
    print(f"\nResident memory per idle connection, {args.conns:,} connections "
          f"(median of {args.rounds} round(s))")
    print(table(["server", "KiB per connection", "held", "ratio to streams", "note"], rows))
    print("bar (issue 3): twinsock_async <= asyncio_streams (ratio <= 1.00) on the same loop")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
