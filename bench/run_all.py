"""Run every benchmark in one go, with short default durations.

How this works: the benchmarks run one after the other in this process (each
one starts its own server and load generator processes), in the order of the
issues' bars: lines/s, recv_into, thread echo, async echo, memory, TLS, then
the serving ones: ``serve`` against the hand-written loop, ``serve_lines``
against streams and raw protocols, and ``run_server`` with 1 and 2 workers.
Each prints its own table and ratios; progress goes to stderr. The default
durations keep the whole suite at about 13-15 minutes on a 2-core machine;
``--quick`` is a smoke run of a few seconds per benchmark (figures from it are
not meaningful). ``--only NAME[,NAME]`` picks some of them.

``--json FILE`` also writes the figures as JSON for ``bench/plot.py``, in a
versioned format (:data:`FORMAT`)::

    {"format": 1, "date": "2026-12-04T18:00:00Z", "commit": "3e6c9ac",
     "complete": true, "quick": false, "python": "3.11.7", ...,
     "results": [{"bench": "async_echo", "kind": "echo", "server": "twinsock_async",
                  "loop": "uvloop", "line_bytes": 64, "requests_per_s": 123192.0, ...}, ...]}

Echo rows (``kind: "echo"``: thread, async and TLS echo, serve, serve_lines,
workers) come from ``common.interleaved_echo`` itself, one per peer and
group, with every round's sample, the median server and load generator CPU
shares (``server_cpu``: the server's whole process tree, so above 1.0 when
``run_server``'s workers used more than one core), ``workers`` (the
``--workers N`` of a ``run_server`` server, else null) and ``pinned``
(whether the server had a CPU to itself; false for the workers benchmark).
``server_cpu``, ``loadgen_cpu`` and ``pinned`` were added to format 1 without
a new number (new fields only): a reader of format 1 takes rows without them
(older files). The other benchmarks' rows are read from the summary table
each one returns: ``lines`` (lines/s), ``recv_into`` (MB/s), ``memory`` (KiB
per idle connection) and ``tls_memory`` (KiB per idle TLS pair). A benchmark
without such a reader keeps its table as ``kind: "table"``. The file is
written even when a benchmark fails part way (``"complete": false``).

``--json FILE --merge`` re-runs some benchmarks into an earlier results file
(on a shared machine, those that a neighbour disturbed): the rows of each
benchmark that completes now replace that benchmark's rows in FILE, every
other row stays, and the file's ``reruns`` list (absent until then) gains one
entry naming the benchmarks, date, commit and seconds of this run. The
file's own ``date`` and ``commit`` stay those of the first run.

    python bench/run_all.py [--quick] [--only NAME,...]   (names: see BENCHES)
                            [--json FILE [--merge]]
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_async_echo
import bench_lines
import bench_memory
import bench_recv_into
import bench_serve
import bench_serve_lines
import bench_thread_echo
import bench_tls
import bench_workers
from common import progress, recording

BENCHES: dict[str, Callable[[list[str] | None], object]] = {
    "lines": bench_lines.main,
    "recv_into": bench_recv_into.main,
    "thread_echo": bench_thread_echo.main,
    "async_echo": bench_async_echo.main,
    "memory": bench_memory.main,
    "tls": bench_tls.main,
    "serve": bench_serve.main,
    "serve_lines": bench_serve_lines.main,
    "workers": bench_workers.main,
}

#: The version of the JSON layout; ``bench/plot.py`` refuses any other.
FORMAT = 1


def number(cell: str) -> float | None:
    """A figure as the tables print it ("7,738,707", "3.61"), or None ("not available")."""
    text = cell.replace(",", "").strip()
    return float(text) if re.fullmatch(r"-?\d+(\.\d+)?", text) else None


def split_loop(label: str) -> tuple[str, str]:
    """``"twinsock_async (uvloop)"`` -> ``("twinsock_async", "uvloop")``."""
    if label.endswith(" (uvloop)"):
        return label.removesuffix(" (uvloop)"), "uvloop"
    return label, "default"


def rows_of(bench: str, rows: list[list[str]]) -> list[dict[str, Any]]:
    """Result rows from a benchmark's returned summary table (echo rows come from common)."""
    out: list[dict[str, Any]] = []
    if bench in ("lines", "recv_into"):
        unit = "lines_per_s" if bench == "lines" else "mb_per_s"
        for label, median, best, *_ in rows:
            out.append({"kind": bench, "reader": label, unit: number(median),
                        "best": number(best)})
    elif bench == "memory":
        for label, kib, _held, _ratio, note in rows:
            server, loop = split_loop(label)
            why = note if number(kib) is not None else " ".join(x for x in (kib, note) if x)
            out.append({"kind": "memory", "server": server, "loop": loop,
                        "kib_per_conn": number(kib), "note": why or None})
    elif bench == "tls":
        for measure, twin, streams, *_ in rows:
            if measure.startswith("KiB per idle TLS pair"):
                loop = "uvloop" if "uvloop" in measure else "default"
                for server, cell in (("twinsock_async", twin), ("asyncio_streams", streams)):
                    out.append({"kind": "tls_memory", "server": server, "loop": loop,
                                "kib_per_pair": number(cell)})
    elif bench not in ("thread_echo", "async_echo") and rows:  # serve, serve_lines, workers
        out.append({"kind": "table", "rows": rows})
    return out


def git_commit(results_file: str | None = None) -> str:
    """The checkout's short commit, with ``-dirty`` when it has uncommitted changes.

    A change to ``results_file`` itself (the file this run writes, committed
    by an earlier run) does not count.
    """
    here = Path(__file__).resolve().parent
    exclude = [f":(exclude){Path(results_file).resolve()}"] if results_file else []
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here,
                                capture_output=True, text=True, check=True).stdout.strip()
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=here,
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", *exclude], cwd=top, capture_output=True,
                               text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def twinsock_location() -> str | None:
    """Where the servers' ``import twinsock`` comes from (a checkout's src, or site-packages)."""
    spec = importlib.util.find_spec("twinsock")
    return str(Path(spec.origin).parent) if spec and spec.origin else None


def environment() -> dict[str, Any]:
    try:
        import uvloop

        uvloop_version: str | None = getattr(uvloop, "__version__", None)
    except ImportError:
        uvloop_version = None
    return {
        "python": platform.python_version(),
        "uvloop": uvloop_version,
        "openssl": ssl.OPENSSL_VERSION,
        "cpus": len(os.sched_getaffinity(0)),
        "twinsock": twinsock_location(),
        "machine": platform.machine(),
    }


def write_json(path: str, meta: dict[str, Any], results: list[dict[str, Any]],
               complete: bool) -> None:
    document = {"format": FORMAT, **meta, "complete": complete, "results": results}
    Path(path).write_text(json.dumps(document, indent=1) + "\n")
    progress(f"[results: {len(results)} rows written to {path}]")


def read_earlier(path: str) -> dict[str, Any]:
    """The results file that ``--merge`` adds to; ValueError with one line if it cannot."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"--merge: cannot read {path}: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"--merge: {path} is not a results file of format {FORMAT}")
    if not isinstance(document.get("results"), list):
        raise ValueError(f"--merge: {path} has no results list")
    return document


def merge(earlier: dict[str, Any], meta: dict[str, Any], results: list[dict[str, Any]],
          done: list[str], complete: bool) -> dict[str, Any]:
    """``earlier`` with the rows of the benchmarks in ``done`` replaced by ``results``'."""
    kept = [r for r in earlier["results"] if r.get("bench") not in done]
    fresh = [r for r in results if r.get("bench") in done]
    order = list(BENCHES)
    merged = sorted(kept + fresh, key=lambda r: order.index(r["bench"])
                    if r.get("bench") in order else len(order))
    rerun: dict[str, Any] = {key: meta[key] for key in ("date", "commit", "quick", "seconds")
                             if key in meta}
    rerun["benches"] = done
    if not complete:
        rerun["failed"] = [n for n in meta["benches"] if n not in done]
    document = {**earlier, "results": merged,
                "reruns": [*earlier.get("reruns", []), rerun]}
    return document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds per benchmark")
    parser.add_argument("--only", default=",".join(BENCHES),
                        help=f"comma-separated subset of {','.join(BENCHES)}")
    parser.add_argument("--json", metavar="FILE",
                        help="also write the figures to FILE (JSON, for bench/plot.py)")
    parser.add_argument("--merge", action="store_true",
                        help="with --json: FILE is an earlier run; replace its rows of the "
                             "benchmarks run now and list this run under 'reruns'")
    args = parser.parse_args(argv)
    earlier: dict[str, Any] | None = None
    if args.merge:
        if not args.json:
            parser.error("--merge needs --json FILE")
        try:
            earlier = read_earlier(args.json)
        except ValueError as exc:
            parser.error(str(exc))
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    sub_args = ["--quick"] if args.quick else []
    meta = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": git_commit(args.json),
        "quick": args.quick,
        "benches": names,
        **environment(),
    }
    results: list[dict[str, Any]] = []
    done: list[str] = []
    complete = False
    start = time.monotonic()
    try:
        for name in names:
            print(f"\n===== {name} =====", flush=True)
            t0 = time.monotonic()
            with recording() as echo_rows:
                try:
                    rows = BENCHES[name](sub_args)
                finally:
                    results += [{"bench": name, **row} for row in echo_rows]
            if isinstance(rows, list):
                results += [{"bench": name, **row} for row in rows_of(name, rows)]
            sys.stdout.flush()
            done.append(name)
            progress(f"[{name} took {time.monotonic() - t0:.0f} s]")
        complete = True
    finally:
        if args.json:
            meta["seconds"] = round(time.monotonic() - start)
            if earlier is None:
                write_json(args.json, meta, results, complete)
            else:
                document = merge(earlier, meta, results, done, complete)
                Path(args.json).write_text(json.dumps(document, indent=1) + "\n")
                progress(f"[results: {', '.join(done) or 'nothing'} merged into {args.json}]")
    print(f"\nall done in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
