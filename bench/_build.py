"""Compile the benchmarks' C helpers (loadgen, echo_epoll, loadgen_tls) with gcc, cached.

How this works: each ``NAME.c`` in this folder is compiled to
``bench/_build/NAME`` with ``gcc -O2``. The binary is rebuilt only when the
source is newer than it (or it is missing); ``loadgen_tls`` links OpenSSL
(``libssl-dev`` headers), so calling :func:`build` before
every benchmark costs a couple of ``stat`` calls. Run this file directly to
build everything: ``python bench/_build.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
BUILD_DIR = BENCH_DIR / "_build"
PROGRAMS = ("loadgen", "echo_epoll", "loadgen_tls")
CFLAGS = ("-O2", "-Wall", "-Wextra", "-std=gnu11")
LIBS: dict[str, tuple[str, ...]] = {"loadgen_tls": ("-lssl", "-lcrypto")}


def build(name: str) -> Path:
    """Return the path of the compiled program ``name``, compiling it if stale.

    Raises:
        RuntimeError: gcc is missing or the compilation failed.
    """
    source = BENCH_DIR / f"{name}.c"
    binary = BUILD_DIR / name
    if binary.exists() and binary.stat().st_mtime >= source.stat().st_mtime:
        return binary
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise RuntimeError("no C compiler (gcc) found: the benchmarks need one")
    BUILD_DIR.mkdir(exist_ok=True)
    tmp = binary.with_suffix(".tmp")
    proc = subprocess.run(
        [gcc, *CFLAGS, "-o", str(tmp), str(source), *LIBS.get(name, ())],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"compiling {source.name} failed:\n{proc.stderr}")
    tmp.replace(binary)  # atomic: a concurrent run never sees half a binary
    return binary


def build_all() -> list[Path]:
    """Build every C program of the benchmarks."""
    return [build(name) for name in PROGRAMS]


if __name__ == "__main__":
    for path in build_all():
        print(path)
    sys.exit(0)
