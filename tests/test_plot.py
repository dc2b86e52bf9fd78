"""bench/plot.py: charts from a results file, and one line plus exit 2 for a bad one.

The results files here are small and hand-made (the layout ``run_all.py
--json`` writes, format 1); no benchmark runs. Drawing needs matplotlib (the
``bench`` extra): without it only the bad-input tests run, since the input is
checked before matplotlib is imported.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PLOT = Path(__file__).resolve().parent.parent / "bench" / "plot.py"


def run_plot(results: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PLOT), str(results), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def echo(bench: str, server: str, loop: str, rps: float, line: int = 64, **extra: Any) -> Any:
    return {"bench": bench, "kind": "echo", "server": server, "label": server, "loop": loop,
            "tls": bench == "tls", "workers": None, "conns": 100, "line_bytes": line,
            "requests_per_s": rps, "samples": [rps], "req_per_cpu_s": rps * 1.1,
            "p50_us": 500.0, "p99_us": 900.0, "errors": 0, "unavailable": None, **extra}


def sample_results() -> dict[str, Any]:
    results = []
    for loop, scale in (("default", 1.0), ("uvloop", 1.2)):
        for server, rps in (("twinsock_async", 100_000), ("asyncio_streams", 45_000),
                            ("asyncio_protocol", 60_000), ("c_epoll", 200_000)):
            results.append(echo("async_echo", server, loop, rps * scale))
        for server, rps in (("twinsock_async_tls", 85_000), ("asyncio_streams_tls", 70_000)):
            results.append(echo("tls", server, loop, rps * scale))
        for server, kib in (("twinsock_async", 3.6), ("asyncio_streams", 5.6)):
            results.append({"bench": "memory", "kind": "memory", "server": server, "loop": loop,
                            "kib_per_conn": kib, "note": None})
    results += [
        {"bench": "lines", "kind": "lines", "reader": "twinsock Socket.recv_line",
         "lines_per_s": 7.7e6, "best": 8e6},
        {"bench": "lines", "kind": "lines", "reader": "socket.makefile('rb').readline",
         "lines_per_s": 9.7e6, "best": 9.9e6},
    ]
    return {"format": 1, "date": "2026-12-04T18:00:00Z", "commit": "abc1234", "quick": False,
            "complete": True, "results": results}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such results file"),
        ("", "empty"),
        ("   \n", "empty"),
        ("{not json", "not JSON"),
        ("[1, 2]", "not a results file"),
        (json.dumps({"format": 0, "results": [{"kind": "echo"}]}), "format 0"),
        (json.dumps({"format": 2, "results": [{"kind": "echo"}]}), "format 2"),
        (json.dumps({"format": 1, "results": []}), "no results"),
        (json.dumps({"format": 1, "results": "x"}), "not a list"),
    ],
    ids=["missing", "empty", "blank", "not-json", "not-a-dict", "older-format", "newer-format",
         "no-results", "results-not-a-list"],
)
def test_bad_results_file_is_one_line_and_exit_2(
    content: str | None, message: str, tmp_path: Path
) -> None:
    results = tmp_path / "results.json"
    if content is not None:
        results.write_text(content)
    result = run_plot(results, tmp_path / "charts")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("plot.py: ") and message in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "charts").exists()


needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None,
    reason="matplotlib is not installed (pip install -e '.[bench]')",
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@needs_matplotlib
def test_charts_from_a_results_file(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text(json.dumps(sample_results()))
    out = tmp_path / "charts"
    result = run_plot(results, out)
    assert result.returncode == 0, result.stderr
    written = {Path(line).name for line in result.stdout.split()}
    assert written == {"async_echo.png", "tls_echo.png", "memory.png", "lines.png"}
    for name in written:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
    # the charts the run has no rows for are named on stderr, not drawn
    assert "serve_vs_serve_lines" in result.stderr and "workers" in result.stderr


@needs_matplotlib
def test_serving_charts_appear_only_with_their_rows(tmp_path: Path) -> None:
    document = sample_results()
    document["results"] += [
        echo("serving", "twinsock_serve", "uvloop", 120_000),
        echo("serving", "twinsock_serve_lines", "uvloop", 160_000),
        echo("serving", "twinsock_run_server", "default", 90_000, workers=1),
        echo("serving", "twinsock_run_server", "default", 150_000, workers=2),
    ]
    results = tmp_path / "results.json"
    results.write_text(json.dumps(document))
    result = run_plot(results, tmp_path / "charts")
    assert result.returncode == 0, result.stderr
    written = {Path(line).name for line in result.stdout.split()}
    assert {"serve_vs_serve_lines.png", "workers.png"} <= written


@needs_matplotlib
def test_workers_chart_with_cpu_shares_and_the_c_ceiling(tmp_path: Path) -> None:
    # rows as bench_workers writes them: server CPU shares (a process tree, so
    # above 1.0 with two workers), servers not pinned, the C server of the same rounds
    document = sample_results()
    for loop in ("default", "uvloop"):
        for server in ("twinsock_run_server", "twinsock_run_server_lines"):
            for workers, rps, cpu in ((1, 80_000, 0.98), (2, 120_000, 1.45)):
                document["results"].append(echo(
                    "workers", server, loop, rps, workers=workers, server_cpu=cpu,
                    loadgen_cpu=0.6, pinned=False))
        document["results"].append(echo("workers", "c_epoll", loop, 150_000, pinned=False))
    results = tmp_path / "results.json"
    results.write_text(json.dumps(document))
    result = run_plot(results, tmp_path / "charts")
    assert result.returncode == 0, result.stderr
    written = {Path(line).name for line in result.stdout.split()}
    assert "workers.png" in written
    # the C reference row carries no workers count: it is no serving row either
    assert "serve_vs_serve_lines.png" not in written
    data = (tmp_path / "charts" / "workers.png").read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000


@needs_matplotlib
def test_a_file_with_benchmarks_re_run_alone_is_plotted(tmp_path: Path) -> None:
    document = sample_results()
    document["reruns"] = [{"date": "2026-12-05T10:00:00Z", "commit": "def5678", "quick": False,
                           "seconds": 80, "benches": ["tls"]}]
    results = tmp_path / "results.json"
    results.write_text(json.dumps(document))
    result = run_plot(results, tmp_path / "charts")
    assert result.returncode == 0, result.stderr
    assert "tls_echo.png" in {Path(line).name for line in result.stdout.split()}


def load_run_all() -> Any:
    bench = str(PLOT.parent)
    if bench not in sys.path:
        sys.path.insert(0, bench)
    return importlib.import_module("run_all")


def test_merge_replaces_only_the_benchmarks_that_ran_again() -> None:
    run_all = load_run_all()
    earlier = sample_results()
    fresh = [echo("tls", "twinsock_async_tls", "default", 99_000),
             echo("async_echo", "twinsock_async", "default", 1.0)]  # async_echo failed: ignored
    meta = {"date": "2026-12-05T10:00:00Z", "commit": "def5678", "quick": False, "seconds": 80,
            "benches": ["tls", "async_echo"]}
    merged = run_all.merge(earlier, meta, fresh, ["tls"], complete=False)
    tls = [r for r in merged["results"] if r["bench"] == "tls"]
    assert [r["requests_per_s"] for r in tls] == [99_000]
    assert merged["results"][0]["bench"] == "lines"  # BENCHES order
    kept = [r for r in earlier["results"] if r["bench"] != "tls"]
    assert [r for r in merged["results"] if r["bench"] != "tls"] == [
        r for b in run_all.BENCHES for r in kept if r["bench"] == b]
    assert merged["date"] == earlier["date"] and merged["commit"] == earlier["commit"]
    assert merged["reruns"] == [{"date": meta["date"], "commit": "def5678", "quick": False,
                                 "seconds": 80, "benches": ["tls"], "failed": ["async_echo"]}]


def test_a_run_with_nothing_to_plot_exits_2(tmp_path: Path) -> None:
    if importlib.util.find_spec("matplotlib") is None:
        pytest.skip("matplotlib is not installed (pip install -e '.[bench]')")
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"format": 1, "results": [{"kind": "something else"}]}))
    result = run_plot(results, tmp_path / "charts")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("plot.py: ")
