"""The twins' docstrings, written once for ``net`` and ``asyncnet``.

How this works.  ``Socket`` and ``AsyncSocket`` (and ``Server`` and
``AsyncServer``, and the module functions both faces define) are one API
with two ways of waiting, so their reference texts are written once, here:
``sockets.SOCKET`` holds the socket methods' texts, ``serving.SERVER`` and
``serving.FUNCTIONS`` the rest.  The twins' texts differ in a few words
("thread" or "task", what ``send`` returns after), so a text names what
differs with a ``$word``: ``$Socket`` reads ``Socket`` or ``AsyncSocket``,
``$thread`` reads ``thread`` or ``task`` (``WORDS``; a ``Table`` adds words
of its own, each one text for both twins or a ``(blocking, async)`` pair).
A ``$word`` alone on a line is a whole fragment (an ``Args`` entry, a few
``Raises`` lines): it takes the line's indentation; a fragment that is
empty for one twin drops its line, and a section header left with nothing
under it goes too.

The shells apply the texts where they define the API:
``@shared_docs(SOCKET, BLOCKING)`` on a class sets the ``__doc__`` of every
method or property the table names, wherever in the class's bases it is
defined, and ``@shared_doc(FUNCTIONS, "dial", BLOCKING)`` on a function sets
its own.  Neither changes anything else.  A member a table names must not
carry a docstring of its own, and the class must have every member the
table names: either mistake raises ``TypeError`` at import, so a text lives
in one place and no entry goes stale.  Methods both twins inherit from
``SocketBase`` keep their docstrings in ``twinsock._base``: they exist once
already.  ``tests/test_docstrings.py`` checks that every public docstring
documents its parameters, result and errors, and that each twin shows the
shared text.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from string import Template
from typing import TypeVar

__all__ = ["ASYNC", "BLOCKING", "WORDS", "Table", "shared_doc", "shared_docs"]

T = TypeVar("T")

#: Index of the blocking twin's text in a ``(blocking, async)`` pair.
BLOCKING = 0
#: Index of the async twin's text in a ``(blocking, async)`` pair.
ASYNC = 1

#: The words every table may use, as ``(blocking, async)`` pairs.
WORDS: dict[str, tuple[str, str]] = {
    "Socket": ("Socket", "AsyncSocket"),
    "Server": ("Server", "AsyncServer"),
    "thread": ("thread", "task"),
    "loop_error": (
        "",
        "RuntimeError: awaited outside a running event loop, or on another loop\n"
        "    than the one the socket first ran on.",
    ),
}

_WHOLE_LINE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_SECTION = re.compile(r"(Args|Returns|Raises):")


class Table:
    """Texts for the twins' members, and the words only these texts use.

    Args:
        texts: member name to text; ``$word`` as the module's docstring says.
        words: more words, each a ``str`` for both twins or a ``(blocking,
            async)`` pair.
        class_text: the class's own docstring (its constructor's ``Args``),
            if the twins share it too.
    """

    def __init__(
        self,
        texts: Mapping[str, str],
        words: Mapping[str, str | tuple[str, str]] | None = None,
        class_text: str | None = None,
    ) -> None:
        self.texts = dict(texts)
        self.class_text = class_text
        self.words: dict[str, tuple[str, str]] = dict(WORDS)
        for name, value in (words or {}).items():
            self.words[name] = (value, value) if isinstance(value, str) else value

    def render(self, name: str, twin: int) -> str:
        """The docstring of member ``name`` for one twin.

        Args:
            name: a key of ``texts``.
            twin: ``BLOCKING`` or ``ASYNC``.

        Returns:
            The text with every ``$word`` replaced, as ``inspect.cleandoc``
            would leave it.

        Raises:
            KeyError: ``name`` is not in the table, or its text uses a word
                nobody defined.
        """
        return self._render(self.texts[name], twin)

    def render_class(self, twin: int) -> str | None:
        """The class's docstring for one twin, or ``None`` if the table has none.

        Args:
            twin: ``BLOCKING`` or ``ASYNC``.

        Returns:
            The text as ``render`` makes it, or ``None``.

        Raises:
            KeyError: the text uses a word nobody defined.
        """
        return None if self.class_text is None else self._render(self.class_text, twin)

    def _render(self, text: str, twin: int) -> str:
        vocabulary = {word: pair[twin] for word, pair in self.words.items()}
        return _drop_empty_sections(_fill(inspect.cleandoc(text), vocabulary))


def _fill(text: str, vocabulary: Mapping[str, str]) -> str:
    lines: list[str] = []
    for line in text.splitlines():
        whole = _WHOLE_LINE.fullmatch(line.strip())
        if whole is None:
            lines.append(Template(line).substitute(vocabulary))
            continue
        value = _fill(vocabulary[whole.group(1)], vocabulary)  # a fragment may use words
        indent = line[: len(line) - len(line.lstrip())]
        lines.extend(indent + part if part else "" for part in value.splitlines())
    return "\n".join(lines)


def _drop_empty_sections(text: str) -> str:
    """Drop a section header that an empty fragment left with nothing under it."""
    lines = text.splitlines()
    kept: list[str] = []
    for i, line in enumerate(lines):
        if _SECTION.fullmatch(line):
            body = next((rest for rest in lines[i + 1 :] if rest.strip()), "")
            if not body.startswith(" "):
                while kept and not kept[-1]:
                    kept.pop()
                continue
        if line or (kept and kept[-1]):  # one blank line between paragraphs
            kept.append(line)
    return "\n".join(kept).strip() + "\n"


def shared_docs(table: Table, twin: int) -> Callable[[type[T]], type[T]]:
    """A class decorator: every member ``table`` names gets its text for ``twin``,
    and the class its ``class_text``, if the table has one.

    Args:
        table: the texts (``sockets.SOCKET``, ``serving.SERVER``).
        twin: ``BLOCKING`` or ``ASYNC``.

    Returns:
        The decorator; it returns the class itself, its members' ``__doc__`` set.

    Raises:
        TypeError: (when applied) the class lacks a member the table names, or
            the member (or the class, for a table with a ``class_text``) has a
            docstring of its own.
    """

    def apply(cls: type[T]) -> type[T]:
        class_doc = table.render_class(twin)
        if class_doc is not None:
            if cls.__dict__.get("__doc__"):
                raise TypeError(
                    f"{cls.__name__} has a docstring of its own: its text lives in "
                    "twinsock._core.docs"
                )
            cls.__doc__ = class_doc
        for name in table.texts:
            member = inspect.getattr_static(cls, name, None)
            target = member.__func__ if isinstance(member, classmethod | staticmethod) else member
            if not (inspect.isfunction(target) or isinstance(target, property)):
                raise TypeError(f"{cls.__name__} has no method or property {name!r} to document")
            if target.__doc__:
                raise TypeError(
                    f"{cls.__name__}.{name} has a docstring of its own: its text lives in "
                    "twinsock._core.docs"
                )
            doc = table.render(name, twin)
            target.__doc__ = doc
            if member is not target:
                member.__doc__ = doc  # a classmethod keeps a copy of its function's
        return cls

    return apply


def shared_doc(table: Table, name: str, twin: int) -> Callable[[T], T]:
    """A function decorator: the function gets ``table``'s text ``name`` for ``twin``.

    Args:
        table: the texts (``serving.FUNCTIONS``).
        name: the entry, usually the function's own name.
        twin: ``BLOCKING`` or ``ASYNC``.

    Returns:
        The decorator; it returns the function itself, its ``__doc__`` set.

    Raises:
        KeyError: ``table`` has no entry ``name``.
        TypeError: (when applied) the function has a docstring of its own.
    """
    doc = table.render(name, twin)

    def apply(func: T) -> T:
        if getattr(func, "__doc__", None):
            raise TypeError(
                f"{name} has a docstring of its own: its text lives in twinsock._core.docs"
            )
        func.__doc__ = doc  # type: ignore[attr-defined,unused-ignore]
        return func

    return apply
