"""Write docs/api.md, the API reference, from the modules' docstrings.

Usage: ``python docs/gen_api.py`` (rewrites docs/api.md) or
``python docs/gen_api.py --check`` (exit 1 if docs/api.md is out of date).
``tests/test_docs.py`` runs the check.

How this works: every module in ``MODULES`` is imported and every name in its
``__all__`` is documented in order: its kind, its signature (annotations as
written in the source, so the output does not depend on the Python version),
and its docstring.  Classes list their public methods and properties,
inherited ones included; enums list their members.  A name a module only
re-exports is shown as a pointer to the module that defines it.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).with_name("api.md")

MODULES = [
    "twinsock.errors",
    "twinsock.addresses",
    "twinsock.nativesockets",
    "twinsock.net",
    "twinsock.asyncnet",
    "twinsock.tls",
    "twinsock.simple",
    "twinsock.cli",
]

INTRO = """\
# twinsock API reference

Generated from the docstrings by `docs/gen_api.py`; do not edit by hand
(`python docs/gen_api.py` rewrites it, and a test checks it is current).
The tutorial is [tutorial.md](tutorial.md); how every seed item maps onto
these names is [seed-map.md](seed-map.md).

Conventions that hold everywhere (SPEC section 0): received data is `bytes`;
anything that sends takes a bytes-like object or a `str` (UTF-8); every
`timeout` is in seconds (`None` waits forever, `0` does not wait) and bounds
the whole call; expiry raises `twinsock.errors.NetTimeout`.
"""


def first_paragraph(doc: str | None) -> str:
    if not doc:
        return ""
    return markdown(inspect.cleandoc(doc).split("\n\n", 1)[0])


SECTION = re.compile(r"^(Args|Arguments|Returns|Raises|Yields|Example|Examples|Attributes):$")
ROLE = re.compile(r":\w+:`~?([^`]+)`")


def _role(match: re.Match[str]) -> str:
    """`:class:`~a.b.C`` -> `C`; `:func:`a.b`` -> `a.b`."""
    target = match.group(1)
    return f"`{target.split('.')[-1]}`" if match.group(0).count("~") else f"`{target}`"


def markdown(doc: str) -> str:
    """Google-style docstring text as Markdown: RST roles and ``code`` become `code`,
    and Args / Returns / Raises sections become bold headings with list items."""
    doc = ROLE.sub(_role, doc)
    doc = doc.replace("``", "`")
    out: list[str] = []
    in_section = False
    for line in doc.splitlines():
        heading = SECTION.match(line.strip())
        if heading and not line.startswith(" "):
            out.extend(["", f"**{heading.group(1)}:**", ""])
            in_section = True
            continue
        if in_section and line.startswith("    ") and not line.startswith("        "):
            item = line.strip()
            name, sep, rest = item.partition(": ")
            if sep and " " not in name:
                out.append(f"- `{name}`: {rest}")
            else:
                out.append(f"- {item}")
            continue
        if in_section and line.startswith("        "):
            out[-1] += " " + line.strip()
            continue
        if in_section and line.strip():
            in_section = False
            out.append("")
        out.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()


def docstring(obj: Any) -> str:
    doc = inspect.getdoc(obj)
    return markdown(doc.strip()) if doc else "*(no docstring)*"


def signatures(obj: Any) -> list[str]:
    """The signature, or one per ``@overload`` when the function has overloads."""
    overloads = typing.get_overloads(obj)
    if overloads:
        return [format_signature(each) for each in overloads]
    return [format_signature(obj)]


def format_default(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if value is inspect.Parameter.empty:
        return ""
    return repr(value)


def format_signature(obj: Any) -> str:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return "(...)"
    parts = []
    seen_kw_only = False
    previous_kind = None
    for param in sig.parameters.values():
        if param.kind is param.VAR_POSITIONAL:
            seen_kw_only = True
        elif param.kind is param.KEYWORD_ONLY and not seen_kw_only:
            parts.append("*")
            seen_kw_only = True
        if previous_kind is param.POSITIONAL_ONLY and param.kind is not param.POSITIONAL_ONLY:
            parts.append("/")
        text = param.name
        if param.kind is param.VAR_POSITIONAL:
            text = "*" + text
        elif param.kind is param.VAR_KEYWORD:
            text = "**" + text
        if param.annotation is not param.empty:
            text += f": {annotation_text(param.annotation)}"
        if param.default is not param.empty:
            joiner = " = " if param.annotation is not param.empty else "="
            text += joiner + format_default(param.default)
        parts.append(text)
        previous_kind = param.kind
    if previous_kind is inspect.Parameter.POSITIONAL_ONLY:
        parts.append("/")
    result = f"({', '.join(parts)})"
    if sig.return_annotation is not sig.empty:
        result += f" -> {annotation_text(sig.return_annotation)}"
    return result


def annotation_text(annotation: Any) -> str:
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, typing.ForwardRef):
        return annotation.__forward_arg__
    if isinstance(annotation, type):
        return annotation.__qualname__
    return repr(annotation).replace("typing.", "")


def kind_of(obj: Any) -> str:
    if inspect.isclass(obj):
        if issubclass(obj, BaseException):
            return "exception"
        if issubclass(obj, enum.Enum):
            return "enum"
        return "class"
    if inspect.iscoroutinefunction(obj):
        return "async function"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return "function"
    return "constant"


def class_members(cls: type) -> list[tuple[str, Any]]:
    """Public methods and properties, inherited ones included (not from builtins)."""
    members: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__ == "builtins" or not klass.__module__.startswith("twinsock"):
            continue
        for name, value in vars(klass).items():
            if not name.startswith("_"):
                members[name] = value
    return sorted(members.items())


def document_class(cls: type, lines: list[str]) -> None:
    if issubclass(cls, enum.Enum):
        lines.append("")
        lines.append("| member | value |")
        lines.append("|---|---|")
        for member in cls:
            lines.append(f"| `{member.name}` | `{member.value!r}` |")
        return
    if issubclass(cls, BaseException):
        return
    managers = [kind for method, kind in (("__enter__", "`with`"), ("__aenter__", "`async with`"))
                if hasattr(cls, method)]
    if managers:
        lines.append("")
        lines.append(f"A context manager ({' and '.join(managers)}): leaving the block closes it.")
    for name, value in class_members(cls):
        if isinstance(value, property):
            lines.append("")
            lines.append(f"#### `{cls.__name__}.{name}` (property)")
            lines.append("")
            lines.append(docstring(value))
        elif isinstance(value, (classmethod, staticmethod)):
            func = value.__func__
            lines.append("")
            lines.append(f"#### `{cls.__name__}.{name}{format_signature(getattr(cls, name))}`")
            lines.append("")
            lines.append(f"*{type(value).__name__}.* " + docstring(func))
        elif inspect.isfunction(value):
            prefix = "async " if inspect.iscoroutinefunction(value) else ""
            shown = f"{prefix}{cls.__name__}.{name}{format_signature(value)}"
            lines.append("")
            lines.append(f"#### `{shown}`")
            lines.append("")
            lines.append(docstring(value))


def document_module(
    module: types.ModuleType, lines: list[str], documented: dict[int, str]
) -> None:
    """Document ``module.__all__``; a class or function already documented under
    another public module (``documented``: id -> "module.name") gets a pointer."""
    lines.append("")
    lines.append(f"## `{module.__name__}`")
    lines.append("")
    lines.append(first_paragraph(module.__doc__))
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            where = documented.get(id(obj))
            if where is not None:
                lines.append("")
                lines.append(f"### `{module.__name__}.{name}`")
                lines.append("")
                home, _, home_name = where.rpartition(".")
                lines.append(f"The same object as [`{where}`](#{anchor(home, home_name)}).")
                continue
            documented[id(obj)] = f"{module.__name__}.{name}"
        kind = kind_of(obj)
        lines.append("")
        lines.append(f"### `{module.__name__}.{name}`")
        lines.append("")
        if kind in ("function", "async function"):
            prefix = "async " if kind == "async function" else ""
            shown = "\n".join(f"{prefix}def {name}{sig}" for sig in signatures(obj))
            lines.append(f"```py\n{shown}\n```")
            lines.append("")
            lines.append(docstring(obj))
        elif kind in ("class", "enum", "exception"):
            bases = ", ".join(b.__name__ for b in obj.__bases__ if b is not object)
            shown = f"class {name}({bases})" if bases else f"class {name}"
            if kind == "class":
                shown = f"class {name}{format_signature(obj)}"
                if bases:
                    shown += f"  # a {bases}"
            lines.append(f"```py\n{shown}\n```")
            lines.append("")
            lines.append(docstring(obj))
            document_class(obj, lines)
        else:
            lines.append(f"*{kind}:* `{name} = {constant_text(obj)}`")
            doc = constant_doc(module, name)
            if doc:
                lines.append("")
                lines.append(doc)


def anchor(module: str, name: str) -> str:
    text = f"{module}.{name}".lower()
    return "".join(ch for ch in text if ch.isalnum() or ch in "-_ ").replace(" ", "-")


def constant_text(obj: Any) -> str:
    if isinstance(obj, (int, float, str, bytes)) and not isinstance(obj, bool):
        return repr(obj)
    text = repr(obj)
    return text if len(text) < 90 else type(obj).__name__


def constant_doc(module: types.ModuleType, name: str) -> str:
    """The ``#:`` comment or the string literal just after ``NAME = ...`` in the source."""
    try:
        source = inspect.getsource(module).splitlines()
    except OSError:
        return ""
    for index, line in enumerate(source):
        if line.startswith((f"{name} =", f"{name}:")):
            comments = []
            back = index - 1
            while back >= 0 and source[back].startswith("#:"):
                comments.insert(0, source[back][2:].strip())
                back -= 1
            if comments:
                return " ".join(comments)
            after = source[index + 1].strip() if index + 1 < len(source) else ""
            if after.startswith('"""'):
                return after.strip('"')
            return ""
    return ""


def render() -> str:
    lines = [INTRO.rstrip(), "", "Modules:", ""]
    modules = [importlib.import_module(name) for name in MODULES]
    for module in modules:
        lines.append(f"- [`{module.__name__}`](#{anchor(module.__name__, '').rstrip('.')}): "
                     f"{first_paragraph(module.__doc__).splitlines()[0]}")
    documented: dict[int, str] = {}
    for module in modules:
        document_module(module, lines, documented)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT} is out of date: run python docs/gen_api.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
