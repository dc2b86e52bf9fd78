"""The documentation site documents every public name, and a broken page fails its build.

- Every name in the ``__all__`` of each public module appears in the built
  site's object inventory (``objects.inv``) under that module, so the
  reference generated from the docstrings cannot silently drop one.  The site
  is built once per test session into a temporary folder.
- Every class and function a public module exports says it lives in a public
  module (``__module__``), so tracebacks, ``repr`` and the reference name the
  module a user imports, not a private one.
- The build with ``-W`` (as CI runs it) exits non-zero, naming the problem,
  on a toctree entry with no page and on a cross-reference to no object.

Without Sphinx (the ``docs`` extra) the site tests are skipped, saying so; CI
installs it.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

PUBLIC_MODULES = [
    "twinsock",
    "twinsock.errors",
    "twinsock.addresses",
    "twinsock.nativesockets",
    "twinsock.net",
    "twinsock.asyncnet",
    "twinsock.tls",
    "twinsock.simple",
]

needs_sphinx = pytest.mark.skipif(
    importlib.util.find_spec("sphinx") is None or importlib.util.find_spec("myst_parser") is None,
    reason="Sphinx and myst-parser are not installed (pip install -e '.[docs]')",
)


def sphinx_build(source: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-q", "-b", "html", *extra, str(source), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def inventory_names(path: Path) -> set[str]:
    """The Python-domain names in a Sphinx ``objects.inv`` (format version 2)."""
    data = path.read_bytes()
    header_end = 0
    for _ in range(4):  # four '#' lines, then zlib-compressed entries
        header_end = data.index(b"\n", header_end) + 1
    assert data.startswith(b"# Sphinx inventory version 2"), data[:40]
    names = set()
    for line in zlib.decompress(data[header_end:]).decode().splitlines():
        name, role = line.split(" ", 2)[:2]
        if role.startswith("py:"):
            names.add(name)
    return names


@pytest.fixture(scope="session")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    out = tmp_path_factory.mktemp("docs-site")
    result = sphinx_build(DOCS, out)
    inv = out / "objects.inv"
    assert inv.exists(), f"the site was not built:\n{result.stdout}\n{result.stderr}"
    return inventory_names(inv)


@needs_sphinx
@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_reference_documents_every_public_name(module: str, inventory: set[str]) -> None:
    assert module in inventory
    names = importlib.import_module(module).__all__
    missing = [name for name in names if f"{module}.{name}" not in inventory]
    assert not missing, f"{module}: in __all__ but not in the reference: {missing}"


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_public_names_live_in_public_modules(module: str) -> None:
    mod = importlib.import_module(module)
    private = {}
    for name in mod.__all__:
        obj = getattr(mod, name)
        if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj):
            home = obj.__module__
            if any(part.startswith("_") for part in home.split(".")):
                private[name] = home
    assert not private, f"{module}: exported names whose __module__ is private: {private}"


@needs_sphinx
def test_build_fails_on_a_missing_page_or_reference(tmp_path: Path) -> None:
    source = tmp_path / "docs"
    shutil.copytree(DOCS, source, ignore=shutil.ignore_patterns("_build"))
    index = source / "index.md"
    index.write_text(
        index.read_text()
        + "\n```{toctree}\nno-such-page\n```\n\nSee {py:func}`twinsock.net.no_such_function`.\n"
    )
    # conf.py finds the sources through its own location: the copy sits beside
    # no src/, so point it at this checkout's.
    (tmp_path / "src").symlink_to(ROOT / "src")
    for extra in ("README.md", "CHANGELOG.md", "CONTRIBUTING.md"):
        shutil.copy(ROOT / extra, tmp_path / extra)
    shutil.copytree(ROOT / "bench", tmp_path / "bench", ignore=shutil.ignore_patterns("_build"))
    result = sphinx_build(source, tmp_path / "html", "-W", "--keep-going")
    assert result.returncode != 0
    assert "no-such-page" in result.stderr
    assert "twinsock.net.no_such_function" in result.stderr
