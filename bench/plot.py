"""Charts of a benchmark run: PNG files from the JSON that ``run_all.py --json`` writes.

    python bench/plot.py RESULTS.json --out DIR

How this works: the results file is read and checked first (a missing or
empty file, one that is not JSON, or one of another ``format`` than
:data:`FORMAT` is refused with one line on stderr and exit status 2), and
only then is matplotlib imported, with the Agg backend (no display needed).
Each chart is drawn from the rows it needs and skipped, saying so, when the
run has none of them (for example a ``--only lines`` run has no echo rows):

- ``async_echo.png``: requests/s per server on the default loop and on
  uvloop, one panel per line length, the C epoll server as a dashed ceiling;
- ``lines.png``: lines/s of ``recv_line`` against ``makefile().readline``;
- ``tls_echo.png``: TLS echo requests/s per server and loop;
- ``memory.png``: KiB per idle connection (and per idle TLS pair);
- ``thread_echo.png`` and ``recv_into.png``: the blocking benchmarks;
- ``serve_vs_serve_lines.png``: every benchmark that measured a ``serve`` or
  ``serve_lines`` server (a server name with a ``serve`` or ``serve_lines``
  part, such as ``twinsock_serve_lines``), one panel per benchmark, loop and
  line length, with the peers measured in the same rounds (the hand-written
  loop, streams, raw protocols) and the C server as the ceiling;
- ``workers.png``: echo rows that carry a ``workers`` count (``run_server``
  started with ``--workers N``), one column per loop and line length:
  requests/s (the C server of the same rounds as the ceiling) above requests
  per server CPU-second, each bar labelled with the server's CPU share (its
  process tree: above 1.0 when the workers used more than one core).

Rows of format 1 written before ``server_cpu`` and ``pinned`` existed are
drawn too (without the CPU share).

twinsock's bars are orange, its peers' blue. Every chart's title names the
run's date and commit. The file names of the
charts written are printed, one per line.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: The results format this script reads (``run_all.FORMAT``).
FORMAT = 1

Row = dict[str, Any]


class BadResults(Exception):
    """The results file cannot be plotted; the message says why, in one line."""


def load(path: Path) -> dict[str, Any]:
    """The results document, checked.

    Raises:
        BadResults: missing, empty, not JSON, not a results document, or
            another format version.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise BadResults(f"{path}: no such results file") from None
    except OSError as exc:
        raise BadResults(f"{path}: cannot read it ({exc.strerror})") from None
    if not text.strip():
        raise BadResults(f"{path}: the results file is empty")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadResults(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(document, dict) or "format" not in document:
        raise BadResults(f"{path}: not a results file of bench/run_all.py --json (no format)")
    if document["format"] != FORMAT:
        raise BadResults(
            f"{path}: results format {document['format']!r}, but this plot.py reads format "
            f"{FORMAT}: rerun python bench/run_all.py --json FILE"
        )
    results = document.get("results")
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise BadResults(f"{path}: 'results' is not a list of rows")
    if not results:
        raise BadResults(f"{path}: the results file has no results")
    return document


# -- chart helpers ------------------------------------------------------------------------------

LOOPS = ("default", "uvloop")
C_SERVER = "c_epoll"


def rows(document: dict[str, Any], **match: Any) -> list[Row]:
    """The rows whose fields equal every ``match`` value."""
    return [r for r in document["results"] if all(r.get(k) == v for k, v in match.items())]


def title(document: dict[str, Any], what: str, drawn: Sequence[Row] = ()) -> str:
    """What the chart shows, and the date and commit of the run that measured ``drawn``.

    A benchmark re-run alone into the file (``run_all.py --merge``) is named
    with its own date and commit.
    """
    date, commit = str(document.get("date", "?"))[:10], document.get("commit", "?")
    latest: dict[str, dict[str, Any]] = {}
    for rerun in document.get("reruns") or []:
        if isinstance(rerun, dict):
            latest.update({str(b): rerun for b in rerun.get("benches") or []})
    benches = {str(r.get("bench")) for r in drawn}
    rerun_of = {b: latest[b] for b in benches if b in latest}
    if rerun_of and len(rerun_of) == len(benches) and len(
            {id(r) for r in rerun_of.values()}) == 1:
        rerun = next(iter(rerun_of.values()))
        date, commit = str(rerun.get("date", "?"))[:10], rerun.get("commit", "?")
        what += " (re-run alone)"
    elif rerun_of:
        what += f" ({', '.join(sorted(rerun_of))} re-run alone later)"
    quick_runs = [document, *rerun_of.values()] if len(rerun_of) < len(benches) else [
        *rerun_of.values()]
    quick = ", --quick: figures not meaningful" if any(r.get("quick") for r in quick_runs) else ""
    return f"{what}\n{date}, commit {commit}{quick}"


def bar_panel(ax: Any, labels: Sequence[str], values: Sequence[float | None],
              unit: str, ceiling: float | None = None, ceiling_label: str = "") -> None:
    """One panel of labelled bars (missing figures drawn as 'n/a')."""
    heights = [v or 0.0 for v in values]
    colors = ["#e67e22" if "twinsock" in label else "#4a7ab5" for label in labels]
    bars = ax.bar(range(len(labels)), heights, color=colors)
    for bar, value in zip(bars, values, strict=True):
        text = ("n/a" if value is None else f"{value / 1e6:.2f}M" if value >= 1e6
                else f"{value:,.0f}" if value >= 100 else f"{value:.2f}")
        ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)
    if ceiling:
        ax.axhline(ceiling, color="#c0392b", linestyle="--", linewidth=1)
        ax.annotate(ceiling_label or f"{ceiling:,.0f}", (len(labels) - 0.5, ceiling),
                    ha="right", va="bottom", fontsize=8, color="#c0392b")
    from matplotlib.ticker import FuncFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}" if v >= 100
                                               else f"{v:g}"))
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(unit)
    ax.grid(axis="y", alpha=0.3)


def save(fig: Any, out: Path, name: str) -> Path:
    path = out / name
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def echo_by_loop(document: dict[str, Any], bench: str, out: Path, name: str, what: str,
                 keep: Callable[[Row], bool] = lambda r: True) -> Path | None:
    """Requests/s per server, a panel per (loop, line length), the C server as the ceiling."""
    import matplotlib.pyplot as plt

    echo = [r for r in rows(document, bench=bench, kind="echo") if keep(r)]
    groups = sorted({(r["loop"], r["line_bytes"]) for r in echo},
                    key=lambda g: (g[1], LOOPS.index(g[0]) if g[0] in LOOPS else 9))
    if not groups:
        return None
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 4.2), squeeze=False)
    for ax, (loop, line) in zip(axes[0], groups, strict=True):
        group = [r for r in echo if r["loop"] == loop and r["line_bytes"] == line]
        peers = [r for r in group if r["server"] != C_SERVER]
        ceiling = next((r["requests_per_s"] for r in group if r["server"] == C_SERVER), None)
        bar_panel(ax, [r["server"] for r in peers], [r["requests_per_s"] for r in peers],
                  "requests/s", ceiling, "C epoll server" if ceiling else "")
        conns = group[0].get("conns", "?")
        ax.set_title(f"{loop} loop, {line}-byte lines, {conns} conns", fontsize=9)
    fig.suptitle(title(document, what, echo), fontsize=10)
    return save(fig, out, name)


def simple_bars(document: dict[str, Any], kind: str, label_key: str, value_key: str,
                unit: str, out: Path, name: str, what: str) -> Path | None:
    import matplotlib.pyplot as plt

    found = rows(document, kind=kind)
    if not found:
        return None
    fig, ax = plt.subplots(figsize=(max(6.0, 1.25 * len(found)), 4.8))
    bar_panel(ax, [r[label_key] for r in found], [r.get(value_key) for r in found], unit)
    fig.suptitle(title(document, what, found), fontsize=10)
    return save(fig, out, name)


# -- the charts ---------------------------------------------------------------------------------


def chart_async_echo(document: dict[str, Any], out: Path) -> Path | None:
    return echo_by_loop(document, "async_echo", out, "async_echo.png",
                        "Async line echo: requests/s per server")


def chart_tls_echo(document: dict[str, Any], out: Path) -> Path | None:
    return echo_by_loop(document, "tls", out, "tls_echo.png", "TLS line echo: requests/s")


def chart_thread_echo(document: dict[str, Any], out: Path) -> Path | None:
    return echo_by_loop(document, "thread_echo", out, "thread_echo.png",
                        "Thread-per-connection echo: requests/s")


def chart_lines(document: dict[str, Any], out: Path) -> Path | None:
    return simple_bars(document, "lines", "reader", "lines_per_s", "lines/s", out,
                       "lines.png", "Reading 80-byte lines: lines/s")


def chart_recv_into(document: dict[str, Any], out: Path) -> Path | None:
    return simple_bars(document, "recv_into", "reader", "mb_per_s", "MB/s", out,
                       "recv_into.png", "recv_into, 64 KiB buffer: MB/s")


def chart_memory(document: dict[str, Any], out: Path) -> Path | None:
    import matplotlib.pyplot as plt

    panels = [(kind, key, unit) for kind, key, unit in (
        ("memory", "kib_per_conn", "KiB per idle connection"),
        ("tls_memory", "kib_per_pair", "KiB per idle TLS client+server pair"),
    ) if rows(document, kind=kind)]
    if not panels:
        return None
    widest = max(len(rows(document, kind=kind)) for kind, _, _ in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(max(5.5, 1.2 * widest) * len(panels), 4.4),
                             squeeze=False)
    for ax, (kind, key, unit) in zip(axes[0], panels, strict=True):
        found = rows(document, kind=kind)
        bar_panel(ax, [f"{r['server']}\n({r['loop']})" for r in found],
                  [r.get(key) for r in found], unit)
        ax.set_title(unit, fontsize=9)
    drawn = [r for kind, _, _ in panels for r in rows(document, kind=kind)]
    fig.suptitle(title(document, "Memory per idle connection (less is better)", drawn),
                 fontsize=10)
    return save(fig, out, "memory.png")


def is_serving(row: Row) -> bool:
    """A ``serve`` or ``serve_lines`` server (``twinsock_serve_lines``; not ``run_server``)."""
    return re.search(r"(^|_)serve(_lines)?($|_)", str(row.get("server", ""))) is not None


def echo_groups(echo: list[Row]) -> list[tuple[Any, str, Any]]:
    """The (bench, loop, line length) groups of some echo rows, in a stable order."""
    return sorted({(r.get("bench"), r["loop"], r["line_bytes"]) for r in echo},
                  key=lambda g: (str(g[0]), LOOPS.index(g[1]) if g[1] in LOOPS else 9, g[2]))


def ceiling_of(group: list[Row]) -> float | None:
    return next((r["requests_per_s"] for r in group if r["server"] == C_SERVER), None)


def chart_serve_vs_serve_lines(document: dict[str, Any], out: Path) -> Path | None:
    """The serving benchmarks: each group that has a serve/serve_lines row, with its peers."""
    import matplotlib.pyplot as plt

    echo = [r for r in document["results"]
            if r.get("kind") == "echo" and r.get("workers") is None]
    groups = [g for g in echo_groups(echo)
              if any(is_serving(r) for r in echo if (r.get("bench"), r["loop"],
                                                     r["line_bytes"]) == g)]
    if not groups:
        return None
    benches = sorted({g[0] for g in groups}, key=str)
    columns = max(sum(1 for g in groups if g[0] == b) for b in benches)
    fig, axes = plt.subplots(len(benches), columns, figsize=(5.2 * columns, 4.4 * len(benches)),
                             squeeze=False)
    for row_no, bench in enumerate(benches):
        mine = [g for g in groups if g[0] == bench]
        for col_no in range(columns):
            ax = axes[row_no][col_no]
            if col_no >= len(mine):
                ax.set_visible(False)
                continue
            _, loop, line = mine[col_no]
            group = [r for r in echo
                     if (r.get("bench"), r["loop"], r["line_bytes"]) == mine[col_no]]
            peers = [r for r in group if r["server"] != C_SERVER]
            ceiling = ceiling_of(group)
            bar_panel(ax, [r["server"] for r in peers], [r["requests_per_s"] for r in peers],
                      "requests/s", ceiling, "C epoll server" if ceiling else "")
            ax.set_title(f"bench {bench}: {loop} loop, {line}-byte lines", fontsize=9)
    drawn = [r for r in echo if (r.get("bench"), r["loop"], r["line_bytes"]) in groups]
    fig.suptitle(title(document, "serve and serve_lines against their peers: requests/s", drawn),
                 fontsize=10)
    return save(fig, out, "serve_vs_serve_lines.png")


def worker_label(row: Row) -> str:
    count = row["workers"]
    label = f"{row['server']}\n{count} worker{'s' if count != 1 else ''}"
    cpu = row.get("server_cpu")
    return label if cpu is None else f"{label}, CPU {cpu:.2f}"


def chart_workers(document: dict[str, Any], out: Path) -> Path | None:
    """run_server with 1 and 2 workers: req/s over req per server CPU-second, per loop."""
    import matplotlib.pyplot as plt

    echo = [r for r in document["results"]
            if r.get("kind") == "echo" and r.get("workers") is not None]
    if not echo:
        return None
    groups = echo_groups(echo)
    fig, axes = plt.subplots(2, len(groups), figsize=(5.6 * len(groups), 8.4), squeeze=False)
    for col, (bench, loop, line) in enumerate(groups):
        group = sorted((r for r in echo
                        if (r.get("bench"), r["loop"], r["line_bytes"]) == (bench, loop, line)),
                       key=lambda r: (r["server"], r["workers"]))
        ceiling = ceiling_of(rows(document, kind="echo", bench=bench, loop=loop,
                                  line_bytes=line))
        labels = [worker_label(r) for r in group]
        bar_panel(axes[0][col], labels, [r["requests_per_s"] for r in group], "requests/s",
                  ceiling, "C epoll server, same rounds" if ceiling else "")
        axes[0][col].set_title(f"{loop} loop, {line}-byte lines, {group[0].get('conns', '?')} "
                               "conns", fontsize=9)
        bar_panel(axes[1][col], labels, [r.get("req_per_cpu_s") for r in group],
                  "requests per server CPU-second")
        axes[1][col].set_title("per CPU-second of the supervisor and its workers", fontsize=9)
    pinned = any(r.get("pinned") for r in echo)
    how = "" if pinned else ", servers not pinned"
    fig.suptitle(title(document, f"run_server with 1 and 2 workers{how} (the load generator "
                                 "shares the cores)", echo), fontsize=10)
    return save(fig, out, "workers.png")


CHARTS: list[Callable[[dict[str, Any], Path], Path | None]] = [
    chart_async_echo,
    chart_lines,
    chart_tls_echo,
    chart_memory,
    chart_thread_echo,
    chart_recv_into,
    chart_serve_vs_serve_lines,
    chart_workers,
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path, help="the JSON of run_all.py --json")
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNG files")
    args = parser.parse_args(argv)
    try:
        document = load(args.results)
    except BadResults as exc:
        print(f"plot.py: {exc}", file=sys.stderr)
        return 2
    import matplotlib

    matplotlib.use("Agg")
    args.out.mkdir(parents=True, exist_ok=True)
    written = 0
    for chart in CHARTS:
        path = chart(document, args.out)
        if path is None:
            print(f"({chart.__name__.removeprefix('chart_')}: no rows for it in this run)",
                  file=sys.stderr)
        else:
            print(path)
            written += 1
    if not written:
        print(f"plot.py: {args.results}: no row of this run can be plotted", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
