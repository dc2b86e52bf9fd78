"""Sphinx configuration of the twinsock documentation site.

Build it (warnings are errors, as in CI) with::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

How this works: the pages are Markdown (MyST); the README's quick start, the
benchmarks (``bench/README.md``) and the changelog are included from where
they live, so each text exists once.  The API reference is one page per
public module (``docs/reference/``), written by autodoc from the docstrings
(napoleon reads their Google-style Args / Returns / Raises sections).  Three
hooks below keep the site strict: a public callable or class without a
docstring is a warning (so ``-W`` fails), the ``twinsock`` package page gets
one entry per re-exported name (generated from ``twinsock.__all__``, so it
cannot go stale), and a name documented under several public modules (the
package re-exports, ``LineResult`` in both ``net`` and ``asyncnet``) keeps one
primary entry, its first public module in :data:`PUBLIC_MODULES` order, so a
short cross-reference such as ``NetTimeout`` in a ``Raises`` section has one
target.  ``nitpicky`` is on: a reference that resolves nowhere fails the
build; only standard-library targets are exempt, because the site is built
without network access (no intersphinx).
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path
from typing import Any, TypeVar

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT / "src"))

import twinsock  # noqa: E402

project = "twinsock"
author = "the twinsock developers"
copyright = "2026, the twinsock developers"
release = twinsock.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

#: The modules whose ``__all__`` the reference documents, in the order that
#: decides which module is a name's primary home when several export it.
PUBLIC_MODULES = [
    "twinsock.errors",
    "twinsock.addresses",
    "twinsock.nativesockets",
    "twinsock.net",
    "twinsock.asyncnet",
    "twinsock.tls",
    "twinsock.simple",
    "twinsock",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
suppress_warnings: list[str] = []  # nothing is silenced: -W must see every warning

myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_inherit_docstrings = True
python_use_unqualified_type_names = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False

nitpicky = True
#: Standard-library targets (there is no intersphinx without a network) and
#: the type variables of generic signatures.
nitpick_ignore_regex = [
    (r"py:.*", r"(asyncio|socket|ssl|ipaddress|collections\.abc|typing|types|enum|os|"
     r"concurrent\.futures|threading|selectors|array|mmap|pathlib|logging|argparse)(\..*)?"),
    (r"py:.*", r"(Buffer|ReadableBuffer|WriteableBuffer|_T|T|Self|NoneType|Ellipsis)"),
    (r"py:.*", r"(memoryview|bytearray|BaseException|Exception)"),
]

autodoc_type_aliases = {"AnySocket": "twinsock.simple.AnySocket"}

html_theme = "furo"
html_title = f"twinsock {release}"
html_static_path: list[str] = []

# -- the strictness hooks ---------------------------------------------------------------------


def _public_callable(what: str, name: str) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    return what in {"function", "method", "class", "exception", "property"} and not (
        leaf.startswith("_")
    )


def warn_on_missing_docstring(
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """A public function, method, class or property must say what it does."""
    if _public_callable(what, name) and not any(line.strip() for line in lines):
        from sphinx.util import logging

        logging.getLogger("twinsock.docs").warning(
            "%s %s has no docstring", what, name, type="twinsock", subtype="docstring"
        )


def package_page(app: Any, docname: str, source: list[str]) -> None:
    """Fill the package page's marker with one entry per ``twinsock.__all__`` name."""
    marker = "<!-- twinsock-reexports -->"
    if marker not in source[0]:
        return
    entries = ["```{eval-rst}", ".. py:currentmodule:: twinsock", ""]
    for name in twinsock.__all__:
        obj = getattr(twinsock, name)
        if name == "__version__":
            entries += [f".. py:data:: {name}", f"   :value: {obj!r}", "",
                        "   The installed twinsock version.", ""]
            continue
        if inspect.isclass(obj):
            kind = "exception" if issubclass(obj, BaseException) else "class"
        elif callable(obj):
            kind = "function"
        else:
            kind = "data"
        home = _home_module(name, obj)
        entries += [f".. py:{kind}:: {name}", "", f"   See :py:obj:`{home}.{name}`.", ""]
    entries.append("```")
    source[0] = source[0].replace(marker, "\n".join(entries))


def _home_module(name: str, obj: Any) -> str:
    for module in PUBLIC_MODULES[:-1]:
        mod = importlib.import_module(module)
        if name in getattr(mod, "__all__", ()) and getattr(mod, name) is obj:
            return module
    raise RuntimeError(f"twinsock.{name} is exported by no public module")


def _resolve(dotted: str) -> Any:
    """The Python object a documented name stands for, or ``None``."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def one_primary_entry(app: Any, env: Any) -> None:
    """Mark every second documentation of the same object as an alias.

    Aliased entries stay in ``objects.inv`` and stay linkable by their full
    name; only the short ("fuzzy") lookup skips them.
    """
    domain = env.get_domain("py")
    rank = {module: i for i, module in enumerate(PUBLIC_MODULES)}

    def module_of(fullname: str) -> str | None:
        best = None
        for module in rank:
            if fullname.startswith(module + ".") and (best is None or len(module) > len(best)):
                best = module
        return best

    best: dict[tuple[int, str], int] = {}  # (object, name) -> rank of its primary module
    found: list[tuple[str, tuple[int, str], int]] = []
    for fullname, entry in list(domain.objects.items()):
        module = module_of(fullname)
        if module is None or entry.aliased or entry.objtype == "module":
            continue
        top = fullname[len(module) + 1:].split(".", 1)[0]
        obj = _resolve(f"{module}.{top}")
        if obj is None or isinstance(obj, int | str | float | bytes):
            continue
        key = (id(obj), top)
        best[key] = min(best.get(key, rank[module]), rank[module])
        found.append((fullname, key, rank[module]))
    for fullname, key, module_rank in found:
        if module_rank != best[key]:
            domain.objects[fullname] = domain.objects[fullname]._replace(aliased=True)


def hide_private_bases(app: Any, name: str, obj: Any, options: Any, bases: list[Any]) -> None:
    """A private base class is not API: its public methods show as the class's own."""
    bases[:] = [
        base for base in bases
        if not any(part.startswith("_") for part in getattr(base, "__module__", "").split("."))
    ]


def hide_private_constructors(
    app: Any, what: str, name: str, obj: Any, options: Any, signature: str | None,
    return_annotation: str | None,
) -> tuple[str, str | None] | None:
    """A class whose constructor takes a private type (``Server`` takes the
    serving core's options) is made by a factory (``serve``), not by calling
    it: the reference shows no constructor signature for it."""
    if what not in {"class", "exception"} or not inspect.isclass(obj):
        return None
    try:
        hints = inspect.get_annotations(obj.__init__, eval_str=True)
    except Exception:
        return None
    for hint in hints.values():
        module = getattr(hint, "__module__", "") or ""
        if module.startswith("twinsock._") and not _exported(hint):
            return "", return_annotation
    return None


def _exported(obj: Any) -> bool:
    return any(
        any(getattr(importlib.import_module(m), n, None) is obj
            for n in getattr(importlib.import_module(m), "__all__", ()))
        for m in PUBLIC_MODULES
    )


def _type_variables() -> list[tuple[str, str]]:
    """The TypeVars of the public modules (a signature names them; they have no page)."""
    found = []
    for module in PUBLIC_MODULES:
        for name, value in vars(importlib.import_module(module)).items():
            if isinstance(value, TypeVar):
                found.append(("py:class", f"{module}.{name}"))
    return found


nitpick_ignore = _type_variables()


def setup(app: Any) -> dict[str, Any]:
    app.connect("autodoc-process-bases", hide_private_bases)
    app.connect("autodoc-process-docstring", warn_on_missing_docstring)
    app.connect("autodoc-process-signature", hide_private_constructors)
    app.connect("source-read", package_page)
    app.connect("env-check-consistency", one_primary_entry)
    return {"parallel_read_safe": True}
