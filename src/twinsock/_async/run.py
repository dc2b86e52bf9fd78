"""``asyncnet.run_server``: serve until SIGINT/SIGTERM on an event loop of its own.

How this works.  Like ``asyncio.run``, ``run_server`` starts a fresh event
loop (uvloop's with ``uvloop=True``), serves on it until a signal, and
closes it.  With ``workers > 1``, ``_workers`` forks first, so no loop exists
at the fork; each worker starts its own loop, serves on its own
``SO_REUSEPORT`` listener, and reads the parent's control pipe with
``add_reader`` (stop, or abort); a signal of the worker's own is a graceful
stop (see ``_workers``).
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Coroutine
from typing import Any

from twinsock import _workers
from twinsock._async.line_connection import LineConnection
from twinsock._async.line_server import serve_lines
from twinsock._async.server import AsyncServer, serve
from twinsock._async.socket import AsyncSocket
from twinsock._core import serving as rules
from twinsock._core.docs import ASYNC, shared_doc
from twinsock._core.docs.serving import FUNCTIONS
from twinsock._core.lines import check_line_callbacks, check_line_max_length
from twinsock._core.serving import DEFAULT_GRACE, ServerStats
from twinsock._core.types import MAX_LINE_LENGTH
from twinsock.addresses import check_port

__all__ = ["run_server"]


@shared_doc(FUNCTIONS, "run_server", ASYNC)
def run_server(
    handler: (
        Callable[[AsyncSocket], Coroutine[Any, Any, object]]
        | Callable[[LineConnection, bytes], object]
    ),
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    workers: int = 1,
    grace: float = DEFAULT_GRACE,
    uvloop: bool = False,
    lines: bool = False,
    **options: Any,
) -> ServerStats:
    start, options = _starter(handler, lines, options)
    count = rules.check_workers(workers)
    grace = rules.check_grace(grace)
    checked_host = rules.check_host(host)
    port = check_port(port)
    checked = rules.check_serve_options(**options)
    loop_factory = _loop_factory(uvloop)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("run_server cannot be called from a running event loop")
    if count == 1:
        return _run(_serve_here(start, handler, checked_host, port, grace, options), loop_factory)
    if checked.sock is None:
        options = {**options, "reuse_port": True}

    def worker_main(worker_port: int, control: int) -> ServerStats:
        main = _serve_in_worker(start, handler, checked_host, worker_port, grace, options, control)
        return _run(main, loop_factory)

    return _workers.run_workers(worker_main, checked_host, port, count, grace, checked)


Start = Callable[..., Coroutine[Any, Any, AsyncServer]]


def _starter(handler: Any, lines: Any, options: dict[str, Any]) -> tuple[Start, dict[str, Any]]:
    """``serve`` and its options, or ``serve_lines`` with the line options bound."""
    if not isinstance(lines, bool):
        raise TypeError(f"lines must be a bool, not {lines!r}")
    if not lines:
        rules.check_handler(handler, coroutine=True)
        return serve, options
    rest = dict(options)
    line_options = {
        name: rest.pop(name) for name in ("on_connect", "on_close", "max_length") if name in rest
    }
    check_line_callbacks(handler, line_options.get("on_connect"), line_options.get("on_close"))
    check_line_max_length(line_options.get("max_length", MAX_LINE_LENGTH))
    return functools.partial(serve_lines, **line_options), rest


def _loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if not isinstance(use_uvloop, bool):
        raise TypeError(f"uvloop must be a bool, not {use_uvloop!r}")
    if not use_uvloop:
        return None
    try:
        import uvloop
    except ImportError as exc:
        raise ImportError(
            "run_server(uvloop=True) needs the uvloop package (pip install uvloop)"
        ) from exc
    return uvloop.new_event_loop


def _run(
    main: Coroutine[Any, Any, ServerStats],
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None,
) -> ServerStats:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main)


async def _serve_here(
    start: Start,
    handler: Any,
    host: str | None,
    port: int,
    grace: float,
    options: dict[str, Any],
) -> ServerStats:
    server = await start(handler, host, port, **options)
    async with server:
        await server.serve_forever(grace)
    return server.stats


async def _serve_in_worker(
    start: Start,
    handler: Any,
    host: str | None,
    port: int,
    grace: float,
    options: dict[str, Any],
    control: int,
) -> ServerStats:
    server = await start(handler, host, port, **options)
    loop = asyncio.get_running_loop()
    os.set_blocking(control, False)
    loop.add_reader(control, _on_control, server, control, grace, loop)
    try:
        await server._run_until_stopped(grace, escalate=False)
    finally:
        loop.remove_reader(control)
    return server.stats


def _on_control(
    server: AsyncServer, control: int, grace: float, loop: asyncio.AbstractEventLoop
) -> None:
    """The parent's STOP (or the pipe's end) and ABORT, read in a worker's loop."""
    try:
        data = os.read(control, 16)
    except BlockingIOError:
        return
    except OSError:
        data = b""
    if _workers.control_action(data) == _workers.ABORT:
        server._abort()
    server._start_shutdown(grace)
    if not data:
        loop.remove_reader(control)
