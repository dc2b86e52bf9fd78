"""Every public docstring documents its parameters, its result and its errors.

The API reference is written by autodoc from the docstrings (Google style,
read by napoleon), so a docstring that leaves out a parameter or an error
leaves a hole in the reference.  For every name in the ``__all__`` of the
modules below, and every public method of the classes among them:

- each parameter is named in an ``Args:`` section (``self`` / ``cls`` not;
  ``*args`` / ``**options`` may be described in the text instead), and the
  section names no parameter the callable lacks (its ``typing.overload``
  forms count);
- a callable that returns something has a ``Returns:`` section;
- a callable has a ``Raises:`` section unless it is one of the few that
  never raise (``NEVER_RAISES``), and every exception named there exists
  (a builtin, a ``twinsock.errors`` class, or a dotted ``socket.gaierror``);
- a class made by calling it documents its constructor's parameters in its
  own docstring (that is the text autodoc shows); classes made by a factory
  and plain records are listed in ``NOT_CONSTRUCTED``.

Properties need only their one-line text; enums and exceptions are records
of values.  The twins' shared texts come from one place
(``twinsock._core.docs``): the last tests check that each twin's docstring
is that text, and that a method both socket twins define has one there.
"""

from __future__ import annotations

import builtins
import enum
import importlib
import inspect
import re
import typing
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from twinsock import asyncnet, errors, net
from twinsock._base import SocketBase
from twinsock._core.docs import ASYNC, BLOCKING, Table, shared_docs
from twinsock._core.docs.lines import LINE_CONNECTION
from twinsock._core.docs.serving import FUNCTIONS, SERVER
from twinsock._core.docs.sockets import SOCKET

#: In the reference's order: a name several modules export is checked under the first.
MODULES = [
    "twinsock.addresses",
    "twinsock.nativesockets",
    "twinsock.net",
    "twinsock.asyncnet",
    "twinsock.tls",
    "twinsock.simple",
]

#: Callables that raise nothing, so they have no ``Raises:`` section (by name:
#: the predicates, descriptor getters and closers every class shares).
NEVER_RAISES = {
    "close", "is_closed", "is_ssl", "has_data_buffered", "get_fd", "fileno",
    "is_serving", "summary", "destroy", "is_ip_address", "get_hostname",
}
#: ... and by full name (none at present).
NEVER_RAISES_QUALIFIED: set[str] = set()

#: Classes whose constructor is no API: made by a factory, or records whose
#: fields are their documented attributes.
NOT_CONSTRUCTED = {
    "Server": "made by net.serve",
    "AsyncServer": "made by asyncnet.serve",
    "LineConnection": "made by the line servers",
    "SslContext": "made by tls.new_context",
    "TcpConn": "made by simple.connect and TcpListener.accept",
    "ServerStats": "a record",
    "LineResult": "a record",
    "Certificate": "a record",
    "Servent": "a record",
    "Hostent": "a record",
    "AddrInfo": "a record",
}

#: Texts that cannot reach the shared table yet: the async line server's files
#: are being changed on another branch (issue 12); they move there next.
PENDING: dict[str, str] = {}

_SECTION = re.compile(r"(Args|Arguments|Returns|Yields|Raises|Attributes|Note|Example):\s*")
_CODE = re.compile(r"(:\w+:)?(``.*?``|`[^`]*`)")  # ``literal`` and :role:`target` spans
_ENTRY = re.compile(r" {4}(\*{0,2}[A-Za-z_][\w.]*(?:, \*{0,2}[A-Za-z_][\w.]*)*)(?: \([^)]*\))?:")


def sections(doc: str) -> dict[str, list[str]]:
    """The Google-style sections of a docstring: header to its indented lines."""
    found: dict[str, list[str]] = {}
    current: str | None = None
    for line in inspect.cleandoc(doc).splitlines():
        header = _SECTION.fullmatch(line)
        if header:
            current = header.group(1)
            found[current] = []
        elif current is not None and (line.startswith(" ") or not line.strip()):
            found[current].append(line)
        else:
            current = None
    return found


def entry_names(body: list[str]) -> list[str]:
    """The names of a section's entries (``name: text`` lines, four spaces in)."""
    names = []
    for line in body:
        match = _ENTRY.match(line)
        if match and not line.startswith(" " * 5):
            names += [name.lstrip("*") for name in match.group(1).split(", ")]
    return names


def public_callables() -> Iterator[tuple[str, Any]]:
    """``(qualified name, function or property)``, each object once."""
    seen: set[int] = set()
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            qualified = f"{module_name}.{name}"
            if inspect.isfunction(obj) and id(obj) not in seen:
                seen.add(id(obj))
                yield qualified, obj
            elif inspect.isclass(obj) and not issubclass(obj, enum.Enum | BaseException):
                for attr in sorted(dir(obj)):
                    if attr.startswith("_"):
                        continue
                    member = inspect.getattr_static(obj, attr)
                    if isinstance(member, classmethod | staticmethod):
                        member = member.__func__
                    if not (inspect.isfunction(member) or isinstance(member, property)):
                        continue  # inherited from a builtin (tuple.count, ...)
                    if id(member) not in seen:
                        seen.add(id(member))
                        yield f"{qualified}.{attr}", member


def constructed_classes() -> Iterator[tuple[str, type]]:
    seen: set[type] = set()
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if (
                inspect.isclass(obj)
                and not issubclass(obj, enum.Enum | BaseException)
                and name not in NOT_CONSTRUCTED
                and obj not in seen
            ):
                seen.add(obj)
                yield f"{module_name}.{name}", obj


CALLABLES = dict(public_callables())


def _parameters(func: Callable[..., Any]) -> list[inspect.Parameter]:
    params = list(inspect.signature(func).parameters.values())
    return [p for p in params if p.name not in ("self", "cls")]


def _overload_names(func: Callable[..., Any]) -> set[str]:
    names = set()
    for form in typing.get_overloads(func):
        names |= {p.name for p in _parameters(form)}
    return names


def _returns_something(func: Callable[..., Any]) -> bool:
    annotation = inspect.signature(func).return_annotation
    return annotation not in (None, "None", inspect.Signature.empty)


def _exception_exists(name: str) -> bool:
    if "." in name:
        module, _, attr = name.rpartition(".")
        try:
            found = getattr(importlib.import_module(module), attr, None)
        except ImportError:
            return False
    else:
        found = getattr(builtins, name, None) or getattr(errors, name, None)
    return inspect.isclass(found) and issubclass(found, BaseException)


def problems_of(qualified: str, func: Any) -> list[str]:
    """What the docstring of ``func`` leaves out."""
    doc = func.__doc__ or ""
    if not doc.strip():
        return ["no docstring"]
    if isinstance(func, property):
        return []
    found = sections(doc)
    problems = []
    params = _parameters(func)
    documented = entry_names(found.get("Args", []))
    for param in params:
        if param.name in documented:
            continue
        variadic = param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
        if not (variadic and re.search(rf"\*{{1,2}}{param.name}\b", doc)):
            problems.append(f"Args: does not name {param.name!r}")
    known = {p.name for p in params} | _overload_names(func)
    problems += [f"Args: names {name!r}, which is no parameter"
                 for name in documented if name not in known]
    returns = [line.strip() for line in found.get("Returns", []) if line.strip()]
    if _returns_something(func) and not returns:
        problems.append("no Returns: section")
    if returns and ":" in _CODE.sub("", returns[0]):
        # napoleon would read "text: more" as "type: description"
        problems.append("Returns: a colon on its first line")
    leaf = qualified.rsplit(".", 1)[-1]
    if leaf not in NEVER_RAISES and qualified not in NEVER_RAISES_QUALIFIED:
        raised = entry_names(found.get("Raises", []))
        if not raised:
            problems.append("no Raises: section")
        problems += [f"Raises: {name} is no exception class"
                     for name in raised if not _exception_exists(name)]
    return problems


@pytest.mark.parametrize("qualified", sorted(CALLABLES))
def test_docstring_documents_parameters_result_and_errors(qualified: str) -> None:
    problems = problems_of(qualified, CALLABLES[qualified])
    if qualified in PENDING and problems:
        pytest.xfail(f"its text waits for {PENDING[qualified]}: {problems}")
    assert not problems, f"{qualified}: {problems}"


@pytest.mark.parametrize(("qualified", "cls"), list(constructed_classes()), ids=lambda v: str(v))
def test_class_documents_its_constructor(qualified: str, cls: type) -> None:
    documented = entry_names(sections(cls.__doc__ or "").get("Args", []))
    params = [p.name for p in _parameters(cls)]
    missing = [name for name in params if name not in documented]
    assert not missing, f"{qualified}: the class docstring's Args: lacks {missing}"


def test_the_walk_sees_the_whole_api() -> None:
    # A walk that silently found nothing would pass every test above.
    for name in ("twinsock.net.Socket.recv_line", "twinsock.asyncnet.AsyncSocket.recv_line",
                 "twinsock.net.Socket.bind_addr", "twinsock.net.Server.shutdown",
                 "twinsock.asyncnet.serve_lines", "twinsock.simple.connect",
                 "twinsock.nativesockets.get_addr_info", "twinsock.tls.new_context",
                 "twinsock.addresses.SocketAddress.create"):
        assert name in CALLABLES, name
    assert len(CALLABLES) > 150


def test_the_checks_catch_a_bad_docstring() -> None:
    def bad(size: int, timeout: float | None = None) -> int:
        """Do something.

        Args:
            size: how many.
            timeoutt: a typo.

        Raises:
            NoSuchError: never.
        """
        return size

    def worse(size: int) -> int:
        """Do something else.

        Returns:
            How many: ``size: int`` (see :class:`int`).
        """
        return size

    assert problems_of("bad", bad) == [
        "Args: does not name 'timeout'",
        "Args: names 'timeoutt', which is no parameter",
        "no Returns: section",
        "Raises: NoSuchError is no exception class",
    ]
    assert problems_of("worse", worse) == [
        "Args: does not name 'size'",
        "Returns: a colon on its first line",
        "no Raises: section",
    ]


# -- the twins' texts come from one place -------------------------------------------------------


def _own_methods(cls: type) -> set[str]:
    """Public methods and properties a socket class defines beyond ``SocketBase``."""
    names = set()
    for name in dir(cls):
        if name.startswith("_") or hasattr(SocketBase, name):
            continue
        names.add(name)
    return names


def test_methods_both_socket_twins_define_have_one_text() -> None:
    both = _own_methods(net.Socket) & _own_methods(asyncnet.AsyncSocket)
    assert both == set(SOCKET.texts), "a method both twins define needs its text in SOCKET"


@pytest.mark.parametrize(
    ("table", "twins"),
    [
        (SOCKET, (net.Socket, asyncnet.AsyncSocket)),
        (SERVER, (net.Server, asyncnet.AsyncServer)),
        (LINE_CONNECTION, (net.LineConnection, asyncnet.LineConnection)),
    ],
    ids=["sockets", "servers", "line-connections"],
)
def test_each_twin_shows_the_shared_text(table: Any, twins: tuple[type, type]) -> None:
    for name in table.texts:
        for twin, cls in zip((BLOCKING, ASYNC), twins, strict=True):
            member = inspect.getattr_static(cls, name)
            if isinstance(member, classmethod):
                member = member.__func__
            assert member.__doc__ == table.render(name, twin), f"{cls.__name__}.{name}"


def test_the_socket_twins_share_their_class_text() -> None:
    # The constructor's Args are the same for both twins: written once, in SOCKET.
    assert net.Socket.__doc__ == SOCKET.render_class(BLOCKING)
    assert asyncnet.AsyncSocket.__doc__ == SOCKET.render_class(ASYNC)
    assert "It runs on the event loop" in (asyncnet.AsyncSocket.__doc__ or "")
    assert "event loop" not in (net.Socket.__doc__ or "")


def test_a_class_text_refuses_a_class_docstring_of_its_own() -> None:
    table = Table({}, class_text="A $Socket.")

    class Bare:
        pass

    assert shared_docs(table, ASYNC)(Bare).__doc__ == "A AsyncSocket.\n"

    class Documented:
        """Its own text."""

    with pytest.raises(TypeError, match="docstring of its own"):
        shared_docs(table, BLOCKING)(Documented)


@pytest.mark.parametrize("name", sorted(FUNCTIONS.texts))
def test_each_module_function_shows_the_shared_text(name: str) -> None:
    assert getattr(net, name).__doc__ == FUNCTIONS.render(name, BLOCKING)
    assert getattr(asyncnet, name).__doc__ == FUNCTIONS.render(name, ASYNC)
