"""The documentation is true: examples run and the seed map is whole.

- Every ```python block of README.md and docs/*.md runs as written, each in
  a fresh namespace (a block marked ```python no-run is only compiled).
  Examples start their own loopback servers on port 0.
- (The API reference is built by Sphinx from the docstrings:
  tests/test_docs_site.py checks it.)
- Every proc / template / type / enum / record / const name of the five seed
  documents appears in docs/seed-map.md.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SEEDS_DIR = Path(os.environ.get("TWINSOCK_SEEDS", ROOT.parent / "shared" / "seeds"))

FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.S | re.M)


def markdown_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    return [f for f in files if f.exists()]


def code_blocks() -> list[Any]:
    params = []
    for path in markdown_files():
        text = path.read_text()
        for match in FENCE.finditer(text):
            info = match.group(1).strip()
            line = text.count("\n", 0, match.start()) + 1
            params.append(
                pytest.param(path, line, info, match.group(2), id=f"{path.name}:{line}")
            )
    return params


def missing_requirement(source: str) -> str | None:
    """Why a block cannot run yet (a module it needs has not landed), or ``None``."""
    if "asyncnet" in source and importlib.util.find_spec("twinsock.asyncnet") is None:
        return "twinsock.asyncnet has not landed yet"
    if "wrap_socket" in source or "wrap_connected_socket" in source:
        from twinsock import net

        if not hasattr(net, "wrap_socket"):
            return "net.wrap_socket has not landed yet"
    if "trustme" in source and importlib.util.find_spec("trustme") is None:
        return "the example needs trustme (pip install trustme)"
    if "uvloop" in source and importlib.util.find_spec("uvloop") is None:
        return "the example needs uvloop"
    return None


@pytest.mark.parametrize(("path", "line", "info", "source"), code_blocks())
def test_code_block_runs(path: Path, line: int, info: str, source: str, tmp_path: Path) -> None:
    code = compile(source, f"{path.name}:{line}", "exec")
    if "no-run" in info.split():
        return
    reason = missing_requirement(source)
    if reason:
        pytest.skip(reason)
    # A subprocess keeps each example's threads, sockets and event loop to itself.
    result = subprocess.run(
        [sys.executable, "-c", source],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"{path.name}:{line} failed:\n{result.stdout}\n{result.stderr}"
    del code


def test_there_are_examples() -> None:
    blocks = code_blocks()
    assert len([b for b in blocks if b.values[0].name == "tutorial.md"]) >= 8


# -- the seed map -----------------------------------------------------------------------------

_START = r"^[ \t]*(?:-[ \t]*)?"
SEED_NAME_PATTERNS = [
    _START + r"proc[ \t]+(?:type[ \t]+|ref[ \t]+)?(?:\w+\.)?(?!Source\b)(`[^`]+`|\w+=?)",
    _START + r"proc[ \t]+(?:type[ \t]+|ref[ \t]+)?(\w+)\.",  # Chapel receiver types
    _START + r"template[ \t]+(`[^`]+`|\w+)",
    _START + r"type[ \t]+(\w+)",
    _START + r"(?:enum|record)[ \t]+(?!constant\b)(\w+)",
    _START + r"enum constant[ \t]+(\w+)",
    _START + r"const[ \t]+(\w+)[ \t]*:",
    _START + r"operator[ \t]+(\S+?)\(",
    _START + r"(\w+)\*?[ \t]*(?:\{[^}\n]*\}[ \t]*)*=[ \t]*(?:enum|object|ref|distinct|proc)\b",
    _START + r"(\w+)(?::[ \t]*\w+)?[ \t]*=[ \t]*-?\d+(?:'i32)?[ \t]*$",
]


def seed_names(text: str) -> set[str]:
    names = set()
    for pattern in SEED_NAME_PATTERNS:
        for match in re.finditer(pattern, text, re.M):
            names.add(match.group(1).strip("`"))
    return names


def seed_files() -> list[Path]:
    return sorted(SEEDS_DIR.glob("0*.txt"))


def test_seed_name_extraction_finds_known_items() -> None:
    if not seed_files():
        pytest.skip(f"no seed documents in {SEEDS_DIR} (set TWINSOCK_SEEDS)")
    everything = set().union(*(seed_names(f.read_text()) for f in seed_files()))
    for name in ("recvLine", "newAsyncSocket", "SslCVerifyMode", "BufferSize", "ipAddr",
                 "tcpConn", "udpSocket", "backlogDefault", "IOC_IN", "htonl", "&=", "=",
                 "pskIdentityHint=", "IPUnspec", "SO_SECINFO", "processClient"):
        assert name in everything, name
    assert "Source" not in everything and "constant" not in everything


def in_code_spans(name: str, spans: list[str]) -> bool:
    """A word appears as a whole word in some code span; an operator is a span of its own."""
    if re.fullmatch(r"\w+=?", name):
        word = re.compile(rf"(?<!\w){re.escape(name)}(?![\w=])" if not name.endswith("=")
                          else rf"(?<!\w){re.escape(name)}")
        return any(word.search(span) for span in spans)
    return any(span.strip() == name for span in spans)


@pytest.mark.parametrize("seed", seed_files(), ids=lambda p: p.name[:3])
def test_seed_map_names_every_seed_item(seed: Path) -> None:
    spans = re.findall(r"`([^`\n]+)`", (DOCS / "seed-map.md").read_text())
    names = seed_names(seed.read_text())
    missing = sorted(name for name in names if not in_code_spans(name, spans))
    assert not missing, f"{seed.name}: not in docs/seed-map.md: {missing}"
