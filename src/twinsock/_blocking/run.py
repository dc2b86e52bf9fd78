"""``net.run_server``: serve until SIGINT/SIGTERM, in one process or in forked workers.

How this works.  With one worker ``run_server`` is ``serve`` plus
``serve_forever`` in the calling process.  With more, ``_workers`` reserves
the port, forks, and supervises; each worker runs ``_worker_main``: a
``serve`` on its own ``SO_REUSEPORT`` listener, a thread that reads the
control pipe (stop, or abort), and the server's waiting loop, in which every
signal of the worker's own is a graceful stop (see ``_workers``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any, cast

from twinsock import _workers
from twinsock._blocking.lines import LineConnection, handler_for_lines
from twinsock._blocking.server import Server, serve
from twinsock._blocking.socket import Socket
from twinsock._core import serving as rules
from twinsock._core.docs import BLOCKING, shared_doc
from twinsock._core.docs.serving import FUNCTIONS
from twinsock._core.serving import DEFAULT_GRACE, ServerStats
from twinsock.addresses import check_port

__all__ = ["run_server"]


@shared_doc(FUNCTIONS, "run_server", BLOCKING)
def run_server(
    handler: Callable[[Socket], object] | Callable[[LineConnection, bytes], object],
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    workers: int = 1,
    grace: float = DEFAULT_GRACE,
    lines: bool = False,
    **options: Any,
) -> ServerStats:
    if not isinstance(lines, bool):
        raise TypeError(f"lines must be a bool, not {lines!r}")
    if lines:
        handle, options = handler_for_lines(handler, options)
    else:
        handle = cast(Callable[[Socket], object], handler)
    rules.check_handler(handle, coroutine=False)
    count = rules.check_workers(workers)
    grace = rules.check_grace(grace)
    checked_host = rules.check_host(host)
    port = check_port(port)
    checked = rules.check_serve_options(**options)
    if count == 1:
        with serve(handle, checked_host, port, **options) as server:
            server.serve_forever(grace)
        return server.stats
    if checked.sock is None:
        options = {**options, "reuse_port": True}

    def worker_main(worker_port: int, control: int) -> ServerStats:
        server = serve(handle, checked_host, worker_port, **options)
        threading.Thread(target=_watch_control, args=(server, control), daemon=True).start()
        server._run_until_stopped(grace, escalate=False)
        return server.stats

    return _workers.run_workers(worker_main, checked_host, port, count, grace, checked)


def _watch_control(server: Server, control: int) -> None:
    """A worker's thread: the parent's STOP (or the pipe's end) and ABORT."""
    while True:
        try:
            data = os.read(control, 16)
        except OSError:
            data = b""
        if _workers.control_action(data) == _workers.ABORT:
            server._abort()
            return
        server._request_stop()
        if not data:
            with contextlib.suppress(OSError):
                os.close(control)
            return
